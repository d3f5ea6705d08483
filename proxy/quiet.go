package proxy

import (
	"net"
	"sync"
	"time"
)

// DefaultShutdownQuiet is how long the upstream must have sent nothing to a
// relayed client before Shutdown may end the session. After login the relay
// is byte-transparent (docs/clients.md, "After login, relay byte for byte"),
// so the proxy cannot see whether a response is complete; a second of
// silence from the upstream means none is being sent.
const DefaultShutdownQuiet = time.Second

// goodbyeTimeout bounds writing the goodbye line to a client that does not
// read. A variable for tests.
var goodbyeTimeout = 5 * time.Second

// QuietConn wraps a relayed client connection. Its writes come from the
// relay (upstream to client); it records when the last one ended, so that
// Shutdown can end the session between two responses, never inside one.
// IMAP says BYE first (RFC 3501 section 7.1.5); POP3 just closes, which
// commits no deletions (RFC 1939 section 6).
type QuietConn struct {
	net.Conn
	end func() // closes both connections of the session

	mu     sync.Mutex
	last   time.Time
	closed bool
}

// NewQuietConn wraps nc; end closes the whole session.
func NewQuietConn(nc net.Conn, end func()) *QuietConn {
	return &QuietConn{Conn: nc, end: end, last: time.Now()}
}

// Write relays upstream bytes to the client and notes the time.
func (c *QuietConn) Write(p []byte) (int, error) {
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
func (c *QuietConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// CloseRead passes the relay's half-close through.
func (c *QuietConn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return nil
}

// EndIfQuiet ends the session if the upstream has written nothing to the
// client for quiet, after writing goodbye when it is not empty, and reports
// whether it did. No relay write follows the goodbye.
func (c *QuietConn) EndIfQuiet(quiet time.Duration, goodbye string) bool {
	// A write in progress (to a client reading slowly) means busy; do not
	// wait for it, Shutdown has other sessions to look at.
	if !c.mu.TryLock() {
		return false
	}
	if time.Since(c.last) < quiet {
		c.mu.Unlock()
		return false
	}
	c.closed = true
	if goodbye != "" {
		// The deadline alone does not bound this write: while the client
		// sends, the relay's other direction pushes the write deadline
		// the idle timeout ahead (relay.touch), and Shutdown, which asks
		// one session after another, would wait for as long. Past
		// goodbyeTimeout the session ends under the write.
		giveUp := time.AfterFunc(goodbyeTimeout, c.end)
		c.Conn.SetWriteDeadline(time.Now().Add(goodbyeTimeout))
		c.Conn.Write([]byte(goodbye))
		giveUp.Stop()
	}
	c.mu.Unlock()
	c.end()
	return true
}
