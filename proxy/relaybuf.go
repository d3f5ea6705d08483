package proxy

import (
	"errors"
	"net"
	"os"
	"time"
)

// hotBuf is the copy buffer of a hot direction: relayBufSize for commands
// and short responses, which is all most sessions ever send, and the bulk
// buffer from the first Read that brings drainFrom or more. Commands then
// cost what they did before bulk buffers: a session that opens, selects
// and idles never takes one.
type hotBuf struct {
	bp    *[]byte
	bulk  bool
	batch *batchConn // under src's TLS, for drain; nil: none
}

// newHotBuf takes a relayBufSize buffer for reading src.
func newHotBuf(src net.Conn) *hotBuf {
	relayBufsOut.Add(1)
	return &hotBuf{bp: relayBufs.Get().(*[]byte), batch: batcherOf(src)}
}

func (h *hotBuf) buf() []byte { return *h.bp }

// toBulk moves to the bulk buffer, keeping its first n bytes; once bulk,
// it stays until release.
func (h *hotBuf) toBulk(n int) {
	if h.bulk {
		return
	}
	big := bulkBufs.Get().(*[]byte)
	copy(*big, (*h.bp)[:n])
	relayBufs.Put(h.bp)
	h.bp, h.bulk = big, true
}

// release gives the buffers back.
func (h *hotBuf) release() {
	if h.bulk {
		bulkBufs.Put(h.bp)
	} else {
		relayBufs.Put(h.bp)
	}
	relayBufsOut.Add(-1)
}

// drain adds to buf[:n] what src has received already, without waiting: a
// *tls.Conn returns one record per Read, and the records behind it may be
// decrypted from what its last system call read. With a batchConn under
// src its reads stop there (noWait); else a read deadline in the past
// does, and then the read deadline is until again.
func drain(src net.Conn, batch *batchConn, buf []byte, n int, until time.Time) (int, error) {
	if batch != nil {
		batch.noWait = true
		defer func() { batch.noWait = false }()
	} else {
		src.SetReadDeadline(longAgo)
		defer src.SetReadDeadline(until)
	}
	for n < len(buf) {
		m, err := src.Read(buf[n:])
		n += m
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

type relayWriter struct {
	r     *relay
	w     net.Conn
	n     *int64
	count ByteCounter // nil: not counted live
	batch *batchConn  // under w's TLS; nil: none
}

// Write writes p to the destination and counts it.
func (rw *relayWriter) Write(p []byte) (int, error) {
	n, err := rw.write(p)
	*rw.n += int64(n)
	if rw.count != nil && n > 0 {
		rw.count.Add(float64(n))
	}
	return n, err
}

// write sends the TLS records of more than one record's worth in one
// system call (batchConn).
func (rw *relayWriter) write(p []byte) (int, error) {
	if rw.batch == nil || len(p) <= maxRecord {
		return rw.w.Write(p)
	}
	rw.batch.cork()
	n, err := rw.w.Write(p)
	if ferr := rw.batch.flush(); err == nil {
		err = ferr
	}
	return n, err
}
