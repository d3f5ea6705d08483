package smtp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mailgate/internal/devup"
	"mailgate/internal/proxytest"
	"mailgate/internal/selfsigned"
	"mailgate/proxy"
)

const (
	alice     = "alice@example.com"
	alicePass = "AlicePass1234"
	aliceID   = "pw-alice"
	goodToken = "good-token"
)

// testCert returns a self-signed certificate for "localhost" (docs/clients.md,
// "Clients ignore IP addresses in certificates") and a pool that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	c, err := selfsigned.New(&selfsigned.Options{Hosts: []string{"localhost"}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return c.TLS, c.Pool
}

// fakeAuth knows alice with an smtp-scoped password, bob with an imap-only
// one; revoked passwords and an outage can be switched on.
type fakeAuth struct {
	mu      sync.Mutex
	revoked bool
	down    bool
}

func (a *fakeAuth) Authenticate(ctx context.Context, req *proxy.LoginRequest) (*proxy.Identity, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.down:
		return nil, fmt.Errorf("store: %w", proxy.ErrUnavailable)
	case req.Proto != proxy.ProtoSMTP:
		return nil, errors.New("wrong proto")
	case req.Username == alice && req.Password == alicePass && !a.revoked:
		return &proxy.Identity{Mailbox: alice, PasswordID: aliceID}, nil
	case req.Username == alice && req.Password == "expiring": // in a moment
		return &proxy.Identity{Mailbox: alice, PasswordID: "pw-exp", Expires: time.Now().Add(300 * time.Millisecond)}, nil
	case req.Username == "bob@example.com" && req.Password == "BobImapOnly1":
		return nil, fmt.Errorf("password lacks scope smtp: %w", proxy.ErrAuthFailed)
	}
	return nil, fmt.Errorf("wrong password: %w", proxy.ErrAuthFailed)
}

// fakeTokens hands out queued tokens first, then goodToken.
type fakeTokens struct {
	mu          sync.Mutex
	queue       []string
	always      string // when set, every Token returns it
	err         error
	invalidated []string
}

func (f *fakeTokens) Token(ctx context.Context, mailbox string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.err != nil:
		return "", f.err
	case f.always != "":
		return f.always, nil
	case len(f.queue) > 0:
		tok := f.queue[0]
		f.queue = f.queue[1:]
		return tok, nil
	}
	return goodToken, nil
}

func (f *fakeTokens) Invalidate(mailbox, token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invalidated = append(f.invalidated, token)
}

func (f *fakeTokens) invalidations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.invalidated...)
}

// collector is a devup.Deliverer that keeps every message.
type collector struct {
	mu   sync.Mutex
	msgs []delivered
	// hook, when set, runs with each message instead of reading it whole.
	hook func(r io.Reader) error
}

type delivered struct {
	To   string
	Data []byte
}

func (c *collector) Deliver(mailbox string, r io.Reader) error {
	c.mu.Lock()
	hook := c.hook
	c.mu.Unlock()
	if hook != nil {
		return hook(r)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, delivered{To: mailbox, Data: data})
	return nil
}

func (c *collector) all() []delivered {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]delivered(nil), c.msgs...)
}

// env is a proxy in front of a devup SMTP upstream, both on 127.0.0.1:0.
type env struct {
	t        *testing.T
	srv      *Server
	up       *devup.SMTPServer
	auth     *fakeAuth
	tokens   *fakeTokens
	deliv    *collector
	sessions *proxy.Registry
	logs     *proxytest.LogBuffer
	addrs    map[proxy.TLSMode]string
	clientTC *tls.Config
	// proxyAddr is a TLSNone listener behind a PROXY protocol listener
	// that trusts loopback (envConfig.proxyProto).
	proxyAddr string
	// upHold, when set, makes the upstream's AUTH wait until it is closed;
	// upEntered then gets a value as each AUTH starts waiting.
	upHold    atomic.Pointer[chan struct{}]
	upEntered chan struct{}
	// meter counts the bytes the front end reports as relayed.
	meter *relayMeter
}

// relayMeter is a proxy.Meter that keeps only the relayed byte counts.
type relayMeter struct{ toUpstream, toClient byteSum }

type byteSum struct{ n atomic.Int64 }

func (b *byteSum) Add(v float64) { b.n.Add(int64(v)) }

func (m *relayMeter) Login(string, string)                       {}
func (m *relayMeter) Sessions(string, int)                       {}
func (m *relayMeter) PreAuth(string, int)                        {}
func (m *relayMeter) UpstreamLogin(string, time.Duration, error) {}
func (m *relayMeter) Relay(string) proxy.RelayCounters {
	return proxy.RelayCounters{ClientToUpstream: &m.toUpstream, UpstreamToClient: &m.toClient}
}

// envConfig tweaks an env before it starts.
type envConfig struct {
	proxyMax   int64
	upstreamMx int64
	implicitUp bool // upstream with implicit TLS instead of STARTTLS
	mechanism  string
	upMechs    []string // the upstream's AUTH mechanisms; nil means both
	upAddr     string   // overrides the upstream address (a dead port)
	reject     map[string]*smtp.SMTPError
	throttle   *proxy.Throttle
	limits     *proxy.Limits
	proxyProto bool
	jsonLog    bool // log in JSON instead of text
	// wrapAuth, if set, wraps the fake Authenticator (to count calls).
	wrapAuth func(proxy.Authenticator) proxy.Authenticator
	preAuth  time.Duration // Options.PreAuthTimeout
	readTO   time.Duration // Options.ReadTimeout
}

func newEnv(t *testing.T, cfg envConfig) *env {
	t.Helper()
	cert, pool := testCert(t)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	e := &env{
		t: t, auth: &fakeAuth{}, tokens: &fakeTokens{}, deliv: &collector{},
		sessions: &proxy.Registry{}, upEntered: make(chan struct{}, 1), logs: &proxytest.LogBuffer{}, addrs: make(map[proxy.TLSMode]string),
		clientTC: &tls.Config{ServerName: "localhost", RootCAs: pool}, meter: &relayMeter{},
	}
	logger := proxytest.FormatLogger(cfg.jsonLog, e.logs, slog.LevelDebug)
	e.up = devup.NewSMTP(&devup.SMTPOptions{
		Verify: func(user, token string) error {
			if hold := e.upHold.Load(); hold != nil {
				e.upEntered <- struct{}{}
				<-*hold
			}
			if user == alice && token == goodToken {
				return nil
			}
			return errors.New("bad token")
		},
		TLSConfig: tlsCfg, Implicit: cfg.implicitUp, Deliver: e.deliv,
		MaxMessageBytes: cfg.upstreamMx, RejectRcpt: cfg.reject, Logger: logger,
		Mechanisms: cfg.upMechs,
	})
	upLn := proxytest.Listen(t)
	go e.up.Serve(upLn)
	t.Cleanup(func() { e.up.Close() })
	upstream := proxy.Upstream{
		Address: upLn.Addr().String(), TLS: proxy.TLSStartTLS, Mechanism: proxy.Mechanism(cfg.mechanism),
		TLSConfig: &tls.Config{ServerName: "localhost", RootCAs: pool},
	}
	if cfg.implicitUp {
		upstream.TLS = proxy.TLSImplicit
	}
	if cfg.upAddr != "" {
		upstream.Address = cfg.upAddr
	}
	var auth proxy.Authenticator = e.auth
	if cfg.wrapAuth != nil {
		auth = cfg.wrapAuth(auth)
	}
	gate := proxy.NewGate(&proxy.GateOptions{Authenticator: auth, Throttle: cfg.throttle,
		Limits: cfg.limits, Sessions: e.sessions, Logger: logger, Meter: e.meter})
	e.srv = New(&Options{
		Gate: gate, Tokens: e.tokens, Upstream: upstream, TLSConfig: tlsCfg,
		Logger: logger, Hostname: "mx.test", MaxMessageBytes: cfg.proxyMax, Limits: cfg.limits,
		PreAuthTimeout: cfg.preAuth, ReadTimeout: cfg.readTO,
	})
	if cfg.proxyProto {
		ln := proxytest.Listen(t)
		e.proxyAddr = ln.Addr().String()
		pl := proxy.NewProxyProtoListener(ln, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, logger)
		go e.srv.Serve(pl, proxy.TLSNone)
	}
	for _, mode := range []proxy.TLSMode{proxy.TLSNone, proxy.TLSStartTLS, proxy.TLSImplicit} {
		ln := proxytest.Listen(t)
		e.addrs[mode] = ln.Addr().String()
		done := make(chan error, 1)
		go func() { done <- e.srv.Serve(ln, mode) }()
		t.Cleanup(func() {
			if err := <-done; err != nil {
				t.Errorf("Serve(%s) = %v, want nil", mode, err)
			}
		})
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		e.srv.Shutdown(ctx)
		if strings.Contains(e.logs.String(), alicePass) || strings.Contains(e.logs.String(), goodToken) {
			t.Errorf("a secret reached the log:\n%s", e.logs)
		}
	})
	return e
}
