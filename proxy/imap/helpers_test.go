package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mailgate/internal/devup"
	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// fakeAuth accepts the password "good" for any user, and `we\ird"pw` too.
// Other passwords name the failure they produce: "down" is ErrUnavailable,
// anything else (wrong, revoked, expired, noscope) ErrAuthFailed.
type fakeAuth struct{ calls atomic.Int32 }

func (a *fakeAuth) Authenticate(ctx context.Context, req *proxy.LoginRequest) (*proxy.Identity, error) {
	a.calls.Add(1)
	if req.Proto != proxy.ProtoIMAP {
		return nil, fmt.Errorf("scope %q: %w", req.Proto, proxy.ErrAuthFailed)
	}
	switch req.Password {
	case "good", `we\ird"pw`:
		return &proxy.Identity{Mailbox: strings.ToLower(req.Username), PasswordID: "pw-" + req.Username}, nil
	case "down":
		return nil, fmt.Errorf("store: %w", proxy.ErrUnavailable)
	case "expiring": // expires in a moment
		return &proxy.Identity{Mailbox: strings.ToLower(req.Username), PasswordID: "pw-exp",
			Expires: time.Now().Add(300 * time.Millisecond)}, nil
	case "panic":
		panic("injected by the test")
	}
	return nil, fmt.Errorf("fake: bad password: %w", proxy.ErrAuthFailed)
}

// verifier is the upstream's token check, switchable per test.
type verifier struct {
	mu     sync.Mutex
	policy string // "", "refuse-first" (only tok1 is bad), "refuse-always"
	// hold, when set, makes the upstream's AUTHENTICATE wait for it to be
	// closed; entered gets a value when one starts waiting.
	hold    chan struct{}
	entered chan struct{}
}

func (v *verifier) verify(user, token string) error {
	v.mu.Lock()
	hold, entered := v.hold, v.entered
	v.mu.Unlock()
	if hold != nil {
		entered <- struct{}{}
		<-hold
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.policy == "refuse-always" || (v.policy == "refuse-first" && token == "tok1") {
		return errors.New("token expired")
	}
	return nil
}

// env is a proxy in front of a devup IMAP upstream, both on 127.0.0.1:0.
type env struct {
	t         *testing.T
	up        *devup.IMAPServer
	upAddr    string
	srv       *Server
	addr      string
	mode      proxy.TLSMode
	clientTLS *tls.Config
	auth      *fakeAuth
	tokens    *proxytest.Tokens
	verifier  *verifier
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

// newEnv starts the upstream (implicit TLS) and the proxy with a listener
// in mode; opts, if set, adjusts the proxy's options before New.
func newEnv(t *testing.T, mode proxy.TLSMode, opts func(*testOptions)) *env {
	t.Helper()
	serverTLS, clientTLS := proxytest.TLSPair(t)
	e := &env{t: t, mode: mode, clientTLS: clientTLS, auth: &fakeAuth{}, tokens: &proxytest.Tokens{},
		verifier: &verifier{}, sessions: &proxy.Registry{}}
	e.up = devup.NewIMAP(&devup.IMAPOptions{Verify: e.verifier.verify, TLSConfig: serverTLS, Logger: proxytest.Logger(t)})
	upLn := proxytest.Listen(t)
	e.upAddr = upLn.Addr().String()
	go e.up.Serve(upLn)
	t.Cleanup(func() { e.up.Close() })
	o := &testOptions{Authenticator: e.auth, Options: Options{
		Tokens: e.tokens, TLSConfig: serverTLS, Logger: proxytest.Logger(t), Hostname: "localhost",
		Upstream: proxy.Upstream{Address: e.upAddr, TLS: proxy.TLSImplicit, Mechanism: "XOAUTH2", TLSConfig: clientTLS},
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

// dial connects to the proxy, with TLS for an implicit listener.
func (e *env) dial() net.Conn {
	e.t.Helper()
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { nc.Close() })
	if e.mode == proxy.TLSImplicit {
		return tls.Client(nc, e.clientTLS)
	}
	return nc
}

// deliver puts a message into mailbox's INBOX on the upstream.
func (e *env) deliver(mailbox string, msg io.Reader) {
	e.t.Helper()
	if err := e.up.Deliver(mailbox, msg); err != nil {
		e.t.Fatal(err)
	}
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
