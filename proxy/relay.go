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

// relayBufSize is the copy buffer per direction; 32 KiB is what io.Copy uses.
const relayBufSize = 32 << 10

var relayBufs = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// relay is the state shared by the two copy directions of one session.
type relay struct {
	client, upstream net.Conn
	idle             time.Duration
	refresh          time.Duration // how often traffic may push the deadlines
	lastRefresh      atomic.Int64  // unix nanoseconds of the last deadline refresh
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
// timeout, closed by the proxy).
func Relay(client, upstream net.Conn, clientBuffered, upstreamBuffered []byte, idle time.Duration) (RelayStats, error) {
	r := &relay{client: client, upstream: upstream, idle: idle, refresh: min(5*time.Second, idle/4)}
	r.touch(true)
	var st RelayStats
	done := make(chan error, 2)
	go func() { done <- r.copy(upstream, client, clientBuffered, &st.ClientToUpstream, EndClient) }()
	go func() { done <- r.copy(client, upstream, upstreamBuffered, &st.UpstreamToClient, EndUpstream) }()
	first := <-done
	if first != nil {
		// A broken or timed-out session cannot finish cleanly: unblock the
		// other direction at once.
		client.Close()
		upstream.Close()
	}
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
// directions are done.
func (r *relay) copy(dst, src net.Conn, buffered []byte, n *int64, side RelayEnd) error {
	w := &relayWriter{r: r, w: dst, n: n}
	if len(buffered) > 0 {
		if _, err := w.Write(buffered); err != nil {
			return err
		}
	}
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	// The wrappers hide ReadFrom/WriteTo so that the copy goes through the
	// pooled buffer and every chunk is counted and refreshes the deadlines.
	_, err := io.CopyBuffer(w, &relayReader{r: r, c: src}, *bp)
	if err != nil {
		return err
	}
	r.firstEOF.CompareAndSwap(nil, side)
	closeWrite(dst)
	closeRead(src)
	return nil
}

// touch pushes both connections' deadlines idle into the future, at most
// once per refresh interval: SetDeadline on every read would cost more than
// the read itself on a busy FETCH.
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
	r.client.SetDeadline(d)
	r.upstream.SetDeadline(d)
}

type relayReader struct {
	r *relay
	c net.Conn
}

func (rr *relayReader) Read(p []byte) (int, error) {
	n, err := rr.c.Read(p)
	if n > 0 {
		rr.r.touch(false)
	}
	return n, err
}

type relayWriter struct {
	r *relay
	w net.Conn
	n *int64
}

func (rw *relayWriter) Write(p []byte) (int, error) {
	n, err := rw.w.Write(p)
	*rw.n += int64(n)
	return n, err
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
