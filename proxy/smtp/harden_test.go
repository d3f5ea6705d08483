package smtp

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// Brute-force throttling, connection limits and the PROXY protocol, seen
// from SMTP clients. Addresses other than 127.0.0.1 come in through the
// env's PROXY protocol listener, which trusts loopback.

// countAuth counts Authenticate calls and records the client addresses.
type countAuth struct {
	inner   proxy.Authenticator
	calls   atomic.Int32
	remotes chan netip.Addr
}

func (a *countAuth) Authenticate(ctx context.Context, req *proxy.LoginRequest) (*proxy.Identity, error) {
	a.calls.Add(1)
	select {
	case a.remotes <- req.Remote:
	default:
	}
	return a.inner.Authenticate(ctx, req)
}

func newHardEnv(t *testing.T, cfg envConfig) (*env, *countAuth) {
	ca := &countAuth{remotes: make(chan netip.Addr, 100)}
	cfg.proxyProto = true
	cfg.wrapAuth = func(a proxy.Authenticator) proxy.Authenticator { ca.inner = a; return ca }
	return newEnv(t, cfg), ca
}

// from connects through the PROXY listener as client ip and says EHLO.
func (e *env) from(ip string) *client {
	e.t.Helper()
	c := e.dialRaw(e.proxyAddr, fmt.Sprintf("PROXY TCP4 %s 127.0.0.1 40000 587\r\n", ip))
	c.expect("220 mx.test ESMTP Service Ready")
	c.ehlo()
	return c
}

// dialRaw connects to addr and sends header, reading nothing.
func (e *env) dialRaw(addr, header string) *client {
	e.t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	conn.Write([]byte(header))
	return &client{t: e.t, conn: conn, tp: textproto.NewConn(conn)}
}

func authPlain(user, pass string) string { return "AUTH PLAIN " + b64("\x00"+user+"\x00"+pass) }

const (
	replyFailed = "535 5.7.8 Authentication failed"
	replyTemp   = "454 4.7.0 Temporary authentication failure"
	replyOK     = "235 2.0.0 Authentication succeeded"
)

func TestThrottleLockout(t *testing.T) {
	e, ca := newHardEnv(t, envConfig{throttle: proxytest.QuickThrottle(proxy.ThrottleOptions{MaxFailures: 2})})
	c := e.from("203.0.113.9")
	c.cmd(authPlain(alice, "wrong"), replyFailed)
	c.cmd(authPlain(alice, "wrong"), replyFailed)
	c.cmd(authPlain(alice, "wrong"), replyTemp)
	// Refusals while locked out count toward the connection's failures.
	c.send(authPlain(alice, alicePass))
	if got := c.expectClosed(); len(got) == 0 || got[0] != "421 4.7.0 Too many authentication failures" {
		t.Fatalf("fourth refusal on one connection: got %q, want 421", got)
	}
	e.from("203.0.113.9").cmd(authPlain(alice, alicePass), replyTemp)
	if n := ca.calls.Load(); n != 2 {
		t.Fatalf("Authenticator called %d times, want 2 (none while locked)", n)
	}
	e.from("198.51.100.1").cmd(authPlain(alice, alicePass), replyOK)
}

// TestThrottleDelayHoldsOnlyTheFailure: a failed AUTH's reply waits (an
// hour), while a good login from another network is answered at once.
// Nothing is timed: a wrongly delayed login would hit the hang guard.
func TestThrottleDelayHoldsOnlyTheFailure(t *testing.T) {
	th := proxy.NewThrottle(&proxy.ThrottleOptions{FailureDelay: time.Hour, MaxFailureDelay: time.Hour})
	e, ca := newHardEnv(t, envConfig{throttle: th})
	bad := e.from("203.0.113.9")
	bad.send(authPlain(alice, "wrong"))
	for ca.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	e.from("198.51.100.1").cmd(authPlain(alice, alicePass), replyOK)
	bad.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if line, err := bad.tp.ReadLine(); err == nil {
		t.Fatalf("failed AUTH answered before its delay: %q", line)
	}
	bad.conn.Close() // the session ends, and with it the delay
}

func TestThrottleTrustedExempt(t *testing.T) {
	th := proxy.NewThrottle(&proxy.ThrottleOptions{FailureDelay: time.Hour, MaxFailures: 1,
		Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	e, _ := newHardEnv(t, envConfig{throttle: th})
	c := e.from("10.1.2.3")
	for range 3 {
		c.cmd(authPlain(alice, "wrong"), replyFailed)
	}
	c.cmd(authPlain(alice, alicePass), replyOK)
}

func TestProxyProtocolRemote(t *testing.T) {
	e, ca := newHardEnv(t, envConfig{})
	e.from("203.0.113.7").cmd(authPlain(alice, alicePass), replyOK)
	if got := <-ca.remotes; got != netip.MustParseAddr("203.0.113.7") {
		t.Fatalf("LoginRequest.Remote = %v", got)
	}
	if lines := e.dialRaw(e.proxyAddr, "EHLO x\r\n").expectClosed(); len(lines) != 0 {
		t.Fatalf("connection without header answered: %q", lines)
	}
}

func TestConnsPerIP(t *testing.T) {
	e, _ := newHardEnv(t, envConfig{limits: proxy.NewLimits(&proxy.LimitsOptions{ConnsPerIP: 2})})
	first := e.from("203.0.113.9")
	e.from("203.0.113.9")
	c := e.dialRaw(e.proxyAddr, "PROXY TCP4 203.0.113.9 127.0.0.1 1 2\r\n")
	if got := c.expectClosed(); len(got) != 1 || got[0] != strings.TrimSuffix(tooManyConnsLine, "\r\n") {
		t.Fatalf("third connection got %q", got)
	}
	e.from("198.51.100.1")
	first.conn.Close()
	for range 2000 { // the slot is freed when the server notices the close
		c := e.dialRaw(e.proxyAddr, "PROXY TCP4 203.0.113.9 127.0.0.1 1 2\r\n")
		if line := c.line(); strings.HasPrefix(line, "220 ") {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("connection slot never released")
}

func TestConnsTotalImplicitTLS(t *testing.T) {
	e, _ := newHardEnv(t, envConfig{limits: proxy.NewLimits(&proxy.LimitsOptions{MaxConns: 1})})
	first := e.dial(proxy.TLSImplicit)
	first.ehlo()
	first.cmd(authPlain(alice, alicePass), replyOK) // a session is never dropped to make room
	conn, err := tls.Dial("tcp", e.addrs[proxy.TLSImplicit], e.clientTC)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &client{t: t, conn: conn, tp: textproto.NewConn(conn)}
	if got := c.expectClosed(); len(got) != 1 || !strings.HasPrefix(got[0], "421 4.7.0 ") {
		t.Fatalf("second connection got %q, want 421 over TLS", got)
	}
}

func TestSessionsPerMailbox(t *testing.T) {
	e, _ := newHardEnv(t, envConfig{limits: proxy.NewLimits(&proxy.LimitsOptions{SessionsPerMailbox: 1})})
	first := e.from("203.0.113.1")
	first.cmd(authPlain(alice, alicePass), replyOK)
	e.from("203.0.113.2").cmd(authPlain(alice, alicePass), replyTemp)
	first.cmd("QUIT", "221 2.0.0 Bye")
	for range 2000 { // the slot is freed when the session ends
		c := e.from("203.0.113.2")
		c.send(authPlain(alice, alicePass))
		if r := c.reply(); r[len(r)-1] == replyOK {
			return
		}
		c.conn.Close()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("session slot never released")
}
