package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// fakeAuth accepts the password "good" for any user, and "with space" too.
// Other passwords name the failure they produce: "down" is ErrUnavailable,
// "expiring" expires in a moment, anything else (wrong, noscope)
// ErrAuthFailed. Logins for another protocol than pop3 fail like a
// password without the pop3 scope.
type fakeAuth struct{ calls atomic.Int32 }

func (a *fakeAuth) Authenticate(ctx context.Context, req *proxy.LoginRequest) (*proxy.Identity, error) {
	a.calls.Add(1)
	if req.Proto != proxy.ProtoPOP3 {
		return nil, fmt.Errorf("scope %q: %w", req.Proto, proxy.ErrAuthFailed)
	}
	id := &proxy.Identity{Mailbox: strings.ToLower(req.Username), PasswordID: "pw-" + req.Username}
	switch req.Password {
	case "good", "with space":
		return id, nil
	case "down":
		return nil, fmt.Errorf("store: %w", proxy.ErrUnavailable)
	case "expiring":
		id.PasswordID, id.Expires = "pw-exp", time.Now().Add(300*time.Millisecond)
		return id, nil
	}
	return nil, fmt.Errorf("fake: bad password: %w", proxy.ErrAuthFailed)
}

// env is a proxy in front of a fake POP3 upstream, both on 127.0.0.1:0.
type env struct {
	t         *testing.T
	up        *fakeUp
	srv       *Server
	addr      string
	mode      proxy.TLSMode
	clientTLS *tls.Config
	auth      *fakeAuth
	tokens    *proxytest.Tokens
	sessions  *proxy.Registry
}

// testOptions are the proxy's Options plus the parts of the shared login
// step a test may replace; newEnv builds the Gate from them.
type testOptions struct {
	Options
	Authenticator proxy.Authenticator
	Throttle      *proxy.Throttle
	Limits        *proxy.Limits
}

// newEnv starts the fake upstream (implicit TLS) and the proxy with a
// listener in mode; opts, if set, adjusts the proxy's options before New.
func newEnv(t *testing.T, mode proxy.TLSMode, opts func(*testOptions)) *env {
	t.Helper()
	serverTLS, clientTLS := proxytest.TLSPair(t)
	e := &env{t: t, mode: mode, clientTLS: clientTLS, auth: &fakeAuth{}, tokens: &proxytest.Tokens{},
		sessions: &proxy.Registry{}}
	e.up = newFakeUp(t, serverTLS)
	o := &testOptions{Authenticator: e.auth, Options: Options{
		Tokens: e.tokens, TLSConfig: serverTLS, Logger: proxytest.Logger(t), Hostname: "localhost",
		Upstream: proxy.Upstream{Address: e.up.addr, TLS: proxy.TLSImplicit, TLSConfig: clientTLS},
	}}
	if opts != nil {
		opts(o)
	}
	o.Options.Limits = o.Limits
	o.Gate = proxy.NewGate(&proxy.GateOptions{Authenticator: o.Authenticator, Throttle: o.Throttle,
		Limits: o.Limits, Sessions: e.sessions, Logger: o.Logger})
	e.srv = New(&o.Options)
	ln := proxytest.Listen(t)
	e.addr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ln, mode) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.srv.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve = %v after Shutdown, want nil", err)
		}
	})
	return e
}

// client is a POP3 client connection to the proxy.
type client struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// dial connects to the proxy (with TLS for an implicit listener) and reads
// the greeting.
func (e *env) dial() *client {
	e.t.Helper()
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { nc.Close() })
	if e.mode == proxy.TLSImplicit {
		nc = tls.Client(nc, e.clientTLS)
	}
	nc.SetDeadline(time.Now().Add(20 * time.Second)) // hang guard
	c := &client{t: e.t, nc: nc, br: bufio.NewReader(nc)}
	c.expect("+OK localhost mailgate POP3 ready")
	return c
}

// login logs in with USER and PASS.
func (e *env) login(user, pass string) *client {
	e.t.Helper()
	c := e.dial()
	c.cmd("USER %s", user)
	if r := c.cmd("PASS %s", pass); r != "+OK Logged in" {
		e.t.Fatalf("PASS: %q", r)
	}
	return c
}

// send writes one command line.
func (c *client) send(format string, args ...any) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.nc, format+"\r\n", args...); err != nil {
		c.t.Fatal(err)
	}
}

// line reads one reply line without its CRLF.
func (c *client) line() string {
	c.t.Helper()
	l, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (after %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("reply %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// cmd sends a command and returns its first reply line.
func (c *client) cmd(format string, args ...any) string {
	c.t.Helper()
	c.send(format, args...)
	return c.line()
}

func (c *client) expect(want string) {
	c.t.Helper()
	if got := c.line(); got != want {
		c.t.Fatalf("got %q, want %q", got, want)
	}
}

// multi reads the lines of a multi-line reply up to the lone ".".
func (c *client) multi() []string {
	c.t.Helper()
	var out []string
	for l := c.line(); l != "."; l = c.line() {
		out = append(out, l)
	}
	return out
}

// waitClosed waits until the proxy closed the connection.
func (c *client) waitClosed() {
	c.t.Helper()
	for {
		l, err := c.br.ReadString('\n')
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return
		}
		if err != nil {
			c.t.Fatalf("waiting for close: %v", err)
		}
		c.t.Logf("before close: %q", l)
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && strings.Contains(oe.Err.Error(), "reset")
}

// startTLS runs STLS on c and replaces its connection with the TLS one.
func (c *client) startTLS(cfg *tls.Config) {
	c.t.Helper()
	c.expect("+OK Begin TLS negotiation")
	tc := tls.Client(c.nc, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.nc, c.br = tc, bufio.NewReader(tc)
}

// waitSessions waits until the registry holds n sessions (a hang guard,
// not a timing assertion).
func waitSessions(t *testing.T, r *proxy.Registry, n int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); r.Len() != n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions registered, want %d", r.Len(), n)
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
