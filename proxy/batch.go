package proxy

import (
	"crypto/tls"
	"net"
	"os"
	"sync"
)

// maxRecord is the most plaintext one TLS record carries (RFC 8446
// section 5.1): a *tls.Conn writes each record with a Write of its own.
const maxRecord = 16 << 10

// batchMax is what a corked batchConn gathers before it writes: the
// records of one relay write (bulkBufSize of plaintext) and their
// headers, nonces and tags.
const batchMax = bulkBufSize + bulkBufSize/maxRecord*256

var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, batchMax); return &b }}

// batchConn sits under a *tls.Conn and lets the relay send many TLS
// records in one system call: a *tls.Conn writes every record of at most
// 16 KiB with a Write of its own, and on loopback or a LAN each write is a
// TCP segment the kernel pushes through and the peer wakes up for. Between
// cork and flush, writes are gathered in a pooled buffer, held only while
// data flows, so an idle connection holds none; otherwise writes go
// straight through.
type batchConn struct {
	net.Conn
	mu  sync.Mutex
	buf *[]byte // non-nil while corked

	// noWait makes a Read fail at once, as with a read deadline in the
	// past: the relay's drain takes what the *tls.Conn above can decrypt
	// from what it has read already, without waiting and without moving
	// the connection's read deadline twice per write. Only the goroutine
	// that reads sets it.
	noWait bool
}

// newBatchConn wraps nc, which a *tls.Conn is then layered over.
func newBatchConn(nc net.Conn) *batchConn { return &batchConn{Conn: nc} }

// Write gathers p while corked, else writes it.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return b.Conn.Write(p)
	}
	if len(*b.buf)+len(p) > cap(*b.buf) {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > cap(*b.buf) {
			return b.Conn.Write(p)
		}
	}
	*b.buf = append(*b.buf, p...)
	return len(p), nil
}

// cork starts gathering writes.
func (b *batchConn) cork() {
	b.mu.Lock()
	if b.buf == nil {
		b.buf = batchBufs.Get().(*[]byte)
	}
	b.mu.Unlock()
}

// flush writes what was gathered, in one Write, and stops gathering.
func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return nil
	}
	err := b.flushLocked()
	batchBufs.Put(b.buf)
	b.buf = nil
	return err
}

func (b *batchConn) flushLocked() error {
	p := *b.buf
	*b.buf = p[:0]
	if len(p) == 0 {
		return nil
	}
	_, err := b.Conn.Write(p)
	return err
}

// Read reads, or with noWait fails at once with os.ErrDeadlineExceeded,
// which a *tls.Conn takes for a timeout and keeps a partial record.
func (b *batchConn) Read(p []byte) (int, error) {
	if b.noWait {
		return 0, os.ErrDeadlineExceeded
	}
	return b.Conn.Read(p)
}

// CloseWrite passes a half-close through.
func (b *batchConn) CloseWrite() error {
	if cw, ok := b.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// CloseRead passes a half-close through.
func (b *batchConn) CloseRead() error {
	if cr, ok := b.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return nil
}

// batcherOf finds the batchConn under the TLS of a relayed connection
// (a QuietConn or a *tls.Conn, over a Front's Conn or a dialed upstream);
// nil when there is none, or no TLS above it to batch records of.
func batcherOf(nc net.Conn) *batchConn {
	if qc, ok := nc.(*QuietConn); ok {
		nc = qc.Conn
	}
	if _, ok := nc.(*tls.Conn); !ok {
		return nil
	}
	return findBatch(nc)
}

// Cork gathers what is written to nc's connection, under any TLS, until
// flush: a *tls.Conn, or a bufio.Writer over it, sends a long stream in
// records of its own, each with a system call; corked, they leave in
// batches of up to 64 KiB. nc is a connection a Front accepted or
// Upstream.Dial returned (or a *tls.Conn over one); for others flush does
// nothing. Flush before waiting for the peer's answer.
func Cork(nc net.Conn) (flush func() error) {
	b := findBatch(nc)
	if b == nil {
		return func() error { return nil }
	}
	b.cork()
	return b.flush
}

// findBatch finds the batchConn under nc, TLS or not.
func findBatch(nc net.Conn) *batchConn {
	for {
		switch c := nc.(type) {
		case *QuietConn:
			nc = c.Conn
		case *tls.Conn:
			nc = c.NetConn()
		case *Conn:
			nc = c.Conn
		case *batchConn:
			return c
		default:
			return nil
		}
	}
}
