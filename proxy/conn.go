package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is one accepted client connection, as a Front tracks it. Front ends
// get it (or a *tls.Conn over it) from the Front's listener; ConnOf finds it
// again.
type Conn struct {
	net.Conn
	f        *Front
	remote   netip.Addr
	deadline time.Time // pre-auth
	slot     *ConnSlot // the connection's place in Limits
	timer    *time.Timer
	loggedIn atomic.Bool
	preAuth  atomic.Bool // counted in the Meter's pre-auth connections
	drain    atomic.Pointer[func(force bool) bool]
	failures atomic.Int32
	once     sync.Once
}

// ConnOf returns the Conn under nc, which may be a *tls.Conn over it; nil
// when nc did not come from a Front.
func ConnOf(nc net.Conn) *Conn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, _ := nc.(*Conn)
	return c
}

// RemoteAddr returns the client's address of nc (unmapped), or the zero
// Addr when it has none.
func RemoteAddr(nc net.Conn) netip.Addr {
	if c := ConnOf(nc); c != nil {
		return c.remote
	}
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// Remote returns the client's address.
func (c *Conn) Remote() netip.Addr {
	if c == nil {
		return netip.Addr{}
	}
	return c.remote
}

// LoginFailed counts a failed login, or a refusal while the client is
// locked out, and reports whether the connection must end now: past
// MaxLoginFailures, in every protocol.
func (c *Conn) LoginFailed() (hangUp bool) {
	return int(c.failures.Add(1)) > MaxLoginFailures
}

// PreAuthDeadline is when the connection is closed unless it logged in.
func (c *Conn) PreAuthDeadline() time.Time { return c.deadline }

// LoggedIn marks the connection as a session: the pre-auth deadline no
// longer applies, and Shutdown asks it to end (OnDrain) instead of closing
// it at once.
func (c *Conn) LoggedIn() {
	c.loggedIn.Store(true)
	c.leavePreAuth()
	c.timer.Stop()
	c.slot.LoggedIn() // never dropped to make room now
}

// leavePreAuth stops counting c as a pre-auth connection, once.
func (c *Conn) leavePreAuth() {
	if c.preAuth.CompareAndSwap(true, false) {
		c.f.o.Meter.PreAuth(c.f.o.Proto, -1)
	}
}

// evict closes a connection that has not logged in, to make room for a new
// one when the total is reached (see Limits).
func (c *Conn) evict() {
	c.f.log.Info("connection dropped to make room: not logged in", "proto", c.f.o.Proto, "remote", addrString(c.remote))
	c.Close()
}

// Handshake runs the server side of a TLS handshake on tc (after
// STARTTLS) within the Front's HandshakeTimeout.
func (c *Conn) Handshake(tc *tls.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.f.o.HandshakeTimeout)
	defer cancel()
	return tc.HandshakeContext(ctx)
}

// OnDrain sets what Shutdown calls, again every FrontOptions.DrainEvery,
// until it reports true (the session is ending by itself: it answered its
// client's last transaction, or said goodbye while the upstream was quiet).
// With force set, the grace period is over and it must end the session at
// once. Without it, Shutdown closes a connection that has not logged in.
func (c *Conn) OnDrain(f func(force bool) bool) { c.drain.Store(&f) }

func (c *Conn) drainStep(force bool) {
	if p := c.drain.Load(); p != nil {
		if (*p)(force) {
			c.drain.Store(nil) // ending: do not ask again
		}
		if !force {
			return
		}
	} else if c.loggedIn.Load() && !force {
		return
	}
	c.Close()
}

// preAuthExpired closes a connection that has not logged in in time. It may
// be TLS by now, which cannot be written to from here, so just close.
func (c *Conn) preAuthExpired() {
	if c.loggedIn.Load() {
		return
	}
	c.f.log.Debug("connection closed before login: pre-auth timeout", "proto", c.f.o.Proto, "remote", addrString(c.remote))
	c.Close()
}

// Close closes the connection, under any TLS, so that no close_notify can
// block on a client that does not read, and forgets it.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.timer != nil {
			c.timer.Stop()
		}
		c.leavePreAuth()
		c.f.remove(c)
		c.slot.Release()
	})
	return err
}

// CloseWrite and CloseRead pass the relay's half-closes through.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// CloseRead passes a half-close through (see CloseWrite).
func (c *Conn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return nil
}
