package pop3

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"mailgate/proxy"
)

// handOff tells the client it is logged in and relays the session until
// either side ends it, or the session's context ends (revoke, expiry,
// forced shutdown). The bytes already read on both sides go first: a
// client may send its next command right after PASS.
//
// mailgate never sends QUIT upstream for the client: whoever ends the
// session, it only closes the connections, so the upstream applies no
// deletion the client did not commit with its own QUIT (RFC 1939 section
// 6).
func (c *conn) handOff(sess *proxy.Session, up *upConn) error {
	if c.s.front.Draining() {
		up.nc.Close()
		c.reply(textUnavailable)
		return errClose
	}
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			c.nc.Close()
			up.nc.Close()
		})
	}
	qc := &quietConn{Conn: c.nc, end: closeBoth, last: time.Now()}
	stop := context.AfterFunc(sess.Context(), closeBoth)
	defer stop()
	c.pc.OnDrain(func(force bool) bool {
		if force {
			closeBoth()
			return true
		}
		return qc.closeIfQuiet(c.s.opts.ShutdownQuiet)
	})
	c.pc.LoggedIn()
	c.reply("+OK Logged in")
	if err := c.bw.Flush(); err != nil {
		closeBoth()
		return errHandedOff
	}
	c.nc.SetDeadline(time.Time{})
	clientBuf, upBuf := peekAll(c.br), peekAll(up.br)
	c.br, c.bw, up.br = nil, nil, nil // not kept for a session that may last
	st, err := proxy.Relay(qc, up.nc, clientBuf, upBuf, c.s.opts.IdleTimeout)
	if cause := context.Cause(sess.Context()); cause != nil && !errors.Is(cause, context.Canceled) {
		err = errors.Join(err, cause)
	}
	c.s.log.Info("session ended",
		"remote", c.remote, "user", sess.Mailbox, "password_id", sess.PasswordID,
		"upstream", c.s.opts.Upstream.Address,
		"duration", time.Since(sess.Started).Round(time.Millisecond),
		"bytes_in", st.ClientToUpstream, "bytes_out", st.UpstreamToClient,
		"end", string(st.End), "err", err)
	return errHandedOff
}

func peekAll(br *bufio.Reader) []byte {
	if br.Buffered() == 0 {
		return nil
	}
	b, _ := br.Peek(br.Buffered())
	return bytes.Clone(b)
}

// quietConn wraps a relayed client connection. Its writes come from the
// relay (upstream to client); it records when the last one ended, so that
// Shutdown closes the session between two writes, never inside one.
type quietConn struct {
	net.Conn
	end func() // closes both connections of the session

	mu     sync.Mutex
	last   time.Time
	closed bool
}

func (c *quietConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Write(p)
	c.last = time.Now()
	return n, err
}

// CloseWrite passes the relay's half-close through.
func (c *quietConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// CloseRead passes the relay's half-close through.
func (c *quietConn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return nil
}

// closeIfQuiet ends the session if the upstream has written nothing to the
// client for quiet, and reports whether it did.
func (c *quietConn) closeIfQuiet(quiet time.Duration) bool {
	// A write in progress (to a client reading slowly) means busy; do not
	// wait for it, Shutdown has other sessions to look at.
	if !c.mu.TryLock() {
		return false
	}
	if time.Since(c.last) < quiet {
		c.mu.Unlock()
		return false
	}
	c.closed = true // no relay write after this
	c.mu.Unlock()
	c.end()
	return true
}
