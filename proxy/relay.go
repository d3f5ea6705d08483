package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// RelayEnd says how a relayed session ended.
type RelayEnd string

// How a relay can end. The side named is the one that finished first.
const (
	EndClient   RelayEnd = "client closed"   // the client closed its side (EOF)
	EndUpstream RelayEnd = "upstream closed" // the upstream closed its side (EOF), e.g. after BYE
	EndIdle     RelayEnd = "idle timeout"    // no traffic either way for the idle duration
	EndClosed   RelayEnd = "closed"          // closed by the proxy: revocation, shutdown
	EndError    RelayEnd = "error"           // a read or write failed
)

// RelayStats reports what a relay moved and how it ended.
type RelayStats struct {
	ClientToUpstream int64
	UpstreamToClient int64
	End              RelayEnd
}

// ByteCounter is told of bytes as a relay moves them, for live metrics.
// Add must be cheap and safe for concurrent use (a Prometheus counter is).
type ByteCounter interface{ Add(float64) }

// RelayCounters are a relay's live byte counters, one per direction; a nil
// field counts nothing.
type RelayCounters struct {
	ClientToUpstream ByteCounter
	UpstreamToClient ByteCounter
}

// relayBufSize is the copy buffer per direction while data flows: 16 KiB
// is the largest TLS record's plaintext, so one Read drains a record.
const relayBufSize = 16 << 10

// bulkBufSize is the copy buffer of a direction that moves records of
// drainFrom or more (a FETCH, an APPEND): four TLS records. One Read gets
// at most one record; the records already received follow it into the
// buffer (drain), and leave in one write, one system call under the TLS
// (batchConn).
const bulkBufSize = 64 << 10

// drainFrom is the least a Read must have brought for the relay to look
// for more records already received: less is a command or a response
// line, and is written at once.
const drainFrom = 4 << 10

// relaySmall is what a direction holds while it waits for data. IMAP
// sessions spend hours in IDLE (RFC 2177); a pooled 16 KiB buffer per
// direction parked in a blocked Read would be most of a session's memory.
const relaySmall = 512

// relayHot is how long a direction keeps the big buffer after it took it
// before it goes back to waiting with the small one. While bytes keep
// coming this costs one extra small read per relayHot.
const relayHot = time.Second

var (
	relayBufs = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}
	bulkBufs  = sync.Pool{New: func() any { b := make([]byte, bulkBufSize); return &b }}
)

// relayBufsOut counts hot buffers taken from relayBufs or bulkBufs; tests
// read it.
var relayBufsOut atomic.Int64

// relay is the state shared by the two copy directions of one session.
type relay struct {
	client, upstream net.Conn
	idle             time.Duration
	refresh          time.Duration // how often traffic may push the deadlines
	lastRefresh      atomic.Int64  // unix nanoseconds of the last deadline refresh
	idleUntil        atomic.Int64  // unix nanoseconds when the session counts as idle
	// firstEOF is the side that closed first (EndClient or EndUpstream),
	// recorded before the half-close: once the peer sees that FIN it may
	// close its own side, and the other direction may finish first.
	firstEOF atomic.Value
}

// Relay copies bytes between client and upstream until both directions are
// done, in the style of inetaf/tcpproxy: first the bytes already buffered
// (read from the client after its LOGIN, from the upstream after its OK),
// then both directions concurrently; a direction that reaches EOF half-closes
// its destination so the other side sees the end too. If idle > 0 the session
// ends after idle without traffic in either direction. Relay closes both
// connections before it returns. The error is nil for a clean end (EOF, idle
// timeout, closed by the proxy). count receives the bytes as they move (metrics).
func Relay(client, upstream net.Conn, clientBuffered, upstreamBuffered []byte, idle time.Duration, count RelayCounters) (RelayStats, error) {
	r := &relay{client: client, upstream: upstream, idle: idle, refresh: min(5*time.Second, idle/4)}
	r.touch(true)
	var st RelayStats
	var firstDone atomic.Bool
	var first error // how the first direction to finish ended
	finish := func(err error) {
		if firstDone.CompareAndSwap(false, true) {
			first = err
		}
		if err != nil {
			// A broken or timed-out session cannot finish cleanly:
			// unblock the other direction at once.
			client.Close()
			upstream.Close()
		}
	}
	done := make(chan struct{})
	go func() {
		finish(r.copy(upstream, client, clientBuffered, &st.ClientToUpstream, count.ClientToUpstream, EndClient))
		close(done)
	}()
	// The other direction runs on the caller's goroutine: one goroutine
	// stack less per session, which idle sessions are mostly made of.
	finish(r.copy(client, upstream, upstreamBuffered, &st.UpstreamToClient, count.UpstreamToClient, EndUpstream))
	<-done
	client.Close()
	upstream.Close()
	if first == nil {
		st.End = r.firstEOF.Load().(RelayEnd)
		return st, nil
	}
	if st.End = relayEnd(first); st.End != EndError {
		return st, nil
	}
	return st, first
}

// relayEnd classifies the error that ended a session.
func relayEnd(err error) RelayEnd {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return EndIdle
	case errors.Is(err, net.ErrClosed):
		return EndClosed
	}
	return EndError
}

// copy moves src to dst, starting with buffered, and half-closes dst at
// src's EOF. n counts the bytes written to dst; it is read only after both
// directions are done. While src is quiet only a small buffer waits in
// Read; bytes that fill it take a big pooled buffer, given back when src
// has been read for relayHot (see hot).
func (r *relay) copy(dst, src net.Conn, buffered []byte, n *int64, count ByteCounter, side RelayEnd) error {
	w := &relayWriter{r: r, w: dst, n: n, count: count, batch: batcherOf(dst)}
	if len(buffered) > 0 {
		if _, err := w.Write(buffered); err != nil {
			return err
		}
	}
	var small [relaySmall]byte
	for {
		src.SetReadDeadline(r.readDeadline(false))
		k, err := src.Read(small[:])
		if k > 0 {
			r.touch(false)
			// A command or a short response fits the small buffer, and
			// leaves from it: only more takes a pooled one, so sessions
			// that log in, select and idle hardly touch the pool.
			if err == nil && k == relaySmall {
				err = r.hot(w, src, small[:k])
			} else if _, werr := w.Write(small[:k]); werr != nil {
				err = werr
			}
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded) && !r.expired():
			continue // the other direction kept the session alive
		case errors.Is(err, io.EOF):
			r.firstEOF.CompareAndSwap(nil, side)
			closeWrite(dst)
			closeRead(src)
			return nil
		case err != nil:
			return err
		}
	}
}

// longAgo is a read deadline in the past: a Read with it returns only
// what is already buffered (a *tls.Conn decrypts a record it holds
// without touching the socket) and never waits.
var longAgo = time.Unix(1, 0)

// hot takes a big buffer for the bytes that woke a quiet direction and
// what follows them: first the rest of first's TLS record, read without
// waiting so that it leaves in the same record, then whatever comes
// within relayHot.
func (r *relay) hot(w *relayWriter, src net.Conn, first []byte) error {
	h := newHotBuf(src)
	defer h.release()
	buf := h.buf()
	n := copy(buf, first)
	if n == relaySmall {
		src.SetReadDeadline(longAgo)
		m, err := src.Read(buf[n:])
		n += m
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			return err
		}
	}
	if _, err := w.Write(buf[:n]); err != nil {
		return err
	}
	until := r.readDeadline(true)
	src.SetReadDeadline(until)
	for {
		err := r.move(w, src, h, until)
		if errors.Is(err, os.ErrDeadlineExceeded) && !r.expired() {
			return nil // back to waiting with the small buffer
		}
		if err != nil {
			return err
		}
	}
}

// move does one Read, adds what followed it if it was a record's worth
// (in the bulk buffer), and writes what it got.
func (r *relay) move(w *relayWriter, src net.Conn, h *hotBuf, until time.Time) error {
	k, err := src.Read(h.buf())
	if err == nil && k >= drainFrom {
		h.toBulk(k)
		k, err = drain(src, h.batch, h.buf(), k, until)
	}
	if k > 0 {
		r.touch(false)
		if _, werr := w.Write(h.buf()[:k]); werr != nil {
			return werr
		}
	}
	return err
}

// readDeadline is when a Read must give up: the idle deadline, or for a
// hot read relayHot from now if that is sooner.
func (r *relay) readDeadline(hot bool) time.Time {
	var d time.Time
	if r.idle > 0 {
		d = time.Unix(0, r.idleUntil.Load())
	}
	if h := time.Now().Add(relayHot); hot && (d.IsZero() || h.Before(d)) {
		d = h
	}
	return d
}

// expired reports whether the session has been idle for the idle duration.
func (r *relay) expired() bool {
	return r.idle > 0 && time.Now().UnixNano() >= r.idleUntil.Load()
}

// touch pushes the idle deadline idle into the future, at most once per
// refresh interval: SetDeadline on every read would cost more than the
// read itself on a busy FETCH. Reads set their own deadlines from
// idleUntil; the write deadlines are set here.
func (r *relay) touch(force bool) {
	if r.idle <= 0 {
		return
	}
	now := time.Now()
	last := r.lastRefresh.Load()
	if !force && now.UnixNano()-last < int64(r.refresh) {
		return
	}
	if !r.lastRefresh.CompareAndSwap(last, now.UnixNano()) {
		return // the other direction is refreshing right now
	}
	d := now.Add(r.idle)
	r.idleUntil.Store(d.UnixNano())
	r.client.SetWriteDeadline(d)
	r.upstream.SetWriteDeadline(d)
}

// closeWrite half-closes c so that the peer sees EOF while the other
// direction keeps going (an IMAP client may still be reading the reply to
// LOGOUT).
func closeWrite(c net.Conn) {
	// *net.TCPConn and *tls.Conn (close_notify, then TCP FIN) both have it.
	if c, ok := c.(interface{ CloseWrite() error }); ok {
		c.CloseWrite()
	}
}

// closeRead tells the kernel we will not read c any more.
func closeRead(c net.Conn) {
	if c, ok := c.(interface{ CloseRead() error }); ok {
		c.CloseRead()
	}
}
