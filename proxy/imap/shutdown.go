package imap

import (
	"net"
	"sync"
	"time"
)

// DefaultShutdownQuiet is how long the upstream must have sent nothing to a
// relayed client before Shutdown may end the session with BYE. After login the
// relay is byte-transparent (docs/clients.md, "After login, relay byte for
// byte"), so the proxy cannot see whether a response is complete; a second of
// silence from the upstream means none is being sent.
const DefaultShutdownQuiet = time.Second

// byeText is the untagged BYE of RFC 3501 section 7.1.5: the client knows
// the server is going away and reconnects, instead of reporting an error.
const byeText = "* BYE mailgate shutting down\r\n"

// byeConn wraps a relayed client connection. Its writes come from the relay
// (upstream to client); it records when the last one ended, and lets
// Shutdown write BYE between two of them, never inside one.
type byeConn struct {
	net.Conn
	end func() // closes both connections of the session

	mu     sync.Mutex
	last   time.Time
	closed bool
}

func newByeConn(nc net.Conn, end func()) *byeConn {
	return &byeConn{Conn: nc, end: end, last: time.Now()}
}

func (c *byeConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Write(p)
	c.last = time.Now()
	return n, err
}

// CloseWrite and CloseRead pass the relay's half-closes through.
func (c *byeConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *byeConn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return nil
}

// byeIfQuiet ends the session with BYE if the upstream has written nothing
// to the client for quiet, and reports whether it did.
func (c *byeConn) byeIfQuiet(quiet time.Duration) bool {
	// A write in progress (to a client reading slowly) means busy; do not
	// wait for it, Shutdown has other sessions to look at.
	if !c.mu.TryLock() {
		return false
	}
	if time.Since(c.last) < quiet {
		c.mu.Unlock()
		return false
	}
	c.closed = true // no relay write after the BYE
	c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.Conn.Write([]byte(byeText))
	c.mu.Unlock()
	c.end()
	return true
}
