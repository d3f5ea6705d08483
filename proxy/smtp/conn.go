package smtp

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mailgate/proxy"
)

// trackingListener registers every accepted connection with the Server, so
// that Shutdown can find connections go-smtp has no session for yet.
// It also applies the connection limits.
type trackingListener struct {
	net.Listener
	srv  *Server
	mode proxy.TLSMode
}

func (l *trackingListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, ok := l.srv.opts.Limits.Conn(remoteAddr(nc))
		if !ok {
			l.srv.log.Warn("connection refused: too many connections", "remote", remoteAddr(nc))
			if done, ok := l.srv.opts.Limits.Refusal(); ok {
				go l.refuse(nc, done)
			} else {
				nc.Close()
			}
			continue
		}
		c := &trackedConn{Conn: nc, srv: l.srv, release: release}
		if l.srv.addConn(c) {
			c.preauth.Store(time.AfterFunc(l.srv.opts.PreAuthTimeout, c.preAuthExpired))
			return c, nil
		}
		c.Close() // accepted while Shutdown closed the listener
	}
}

// refuse answers a connection over the limits with 421 instead of the
// greeting (RFC 5321 section 3.1), over TLS on an implicit listener.
func (l *trackingListener) refuse(nc net.Conn, done func()) {
	defer done()
	nc.SetDeadline(time.Now().Add(refuseTimeout))
	if l.mode == proxy.TLSImplicit {
		nc = tls.Server(nc, l.srv.opts.TLSConfig)
	}
	nc.Write([]byte(tooManyConnsLine))
	nc.Close()
}

// refuseTimeout bounds the refusal, TLS handshake included.
const refuseTimeout = 5 * time.Second

// trackedConn is an accepted connection. go-smtp may wrap it in TLS
// (implicit or after STARTTLS); tracked finds it again.
type trackedConn struct {
	net.Conn
	srv     *Server
	release func() // the connection's slot in Limits
	once    sync.Once
	sess    atomic.Pointer[session] // the current session, nil before EHLO
	// authed is set by a successful AUTH; until then preauth may close the
	// connection.
	authed  atomic.Bool
	preauth atomic.Pointer[time.Timer]
}

// preAuthExpired closes a connection that has not authenticated in time.
// go-smtp's ReadTimeout applies per command, so without this a client
// could keep an unauthenticated connection forever with a NOOP a minute,
// or trickle one byte at a time. It may be TLS by now, so just close.
func (c *trackedConn) preAuthExpired() {
	if c.authed.Load() {
		return
	}
	c.srv.log.Debug("smtp connection closed before login: pre-auth timeout", "remote", remoteAddr(c.Conn).String())
	c.Close()
}

// Close closes the connection and forgets it.
func (c *trackedConn) Close() error {
	if t := c.preauth.Load(); t != nil {
		t.Stop()
	}
	err := c.Conn.Close()
	c.once.Do(func() {
		c.srv.removeConn(c)
		c.release()
	})
	return err
}

// endIfIdle ends the connection unless a transaction is in progress; that
// one ends after its DATA reply or RSET (see session.Reset).
func (c *trackedConn) endIfIdle() {
	if s := c.sess.Load(); s != nil {
		s.endIfIdle()
		return
	}
	// No session yet (no EHLO): the stream may already be TLS, which we
	// cannot write into from here, so just close.
	c.Close()
}

// endNow ends the connection at once, with 421 when it has a session.
func (c *trackedConn) endNow() {
	if s := c.sess.Load(); s != nil {
		s.end(true)
	}
	c.Close()
}

// tracked returns the trackedConn under nc, which may be a *tls.Conn.
func tracked(nc net.Conn) *trackedConn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, _ := nc.(*trackedConn)
	return c
}

// writeLine writes a reply straight to nc, outside go-smtp, with a short
// deadline so a client that does not read cannot hold us.
func writeLine(nc net.Conn, line string) {
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	nc.Write([]byte(line))
}

func (s *Server) addConn(c *trackedConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) removeConn(c *trackedConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// errorLog adapts go-smtp's logger to slog. go-smtp reports connection-level
// failures here (TLS handshakes from scanners, resets): debug level.
type errorLog struct{ l *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.l.Debug("smtp: " + fmt.Sprintf(format, v...))
}

func (e errorLog) Println(v ...any) {
	e.l.Debug("smtp: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
