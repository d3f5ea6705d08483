// Package fakeidp is a small OAuth 2.0 identity provider that runs in
// process on 127.0.0.1. It speaks enough of Microsoft's and Google's token
// endpoints for mailgate's OAuth code, the end-to-end tests (Dovecot checks
// tokens against its RFC 7662 introspection endpoint) and "mailgate serve
// -dev": the device flow (RFC 8628), authorization code with PKCE (RFC 7636),
// refresh tokens with rotation, client credentials and the JWT bearer grant
// of Google service accounts (RFC 7523), and OpenID Connect sign-in:
// discovery, a published key set and RS256-signed ID tokens, with a sign-in
// form for browsers. Go methods play the user (approve, deny, sign in) and
// the bad day (failures, delays, revocation, outage).
package fakeidp

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Options configure a Server. Zero fields take the defaults shown.
type Options struct {
	AccessTTL      time.Duration // lifetime of access tokens; default 1h
	DeviceTTL      time.Duration // lifetime of device codes; default 10m
	DeviceInterval int           // device polling interval in seconds; default 1
	ClientID       string        // if set, requests must name this client
	ClientSecret   string        // if set, client_credentials must present it
	NoIDToken      bool          // issue no ID token, like a plain OAuth 2.0 server
	TenantID       string        // the tid claim of ID tokens, as Entra ID sets it; "" leaves it out
	Logger         *slog.Logger  // default: discard
}

// Server is a running identity provider. Its methods are safe for
// concurrent use.
type Server struct {
	opts Options
	log  *slog.Logger
	srv  *http.Server
	addr string
	// key signs the ID tokens; JWKSURL publishes it under keyID.
	key   *rsa.PrivateKey
	keyID string

	mu        sync.Mutex
	ln        net.Listener
	conns     map[net.Conn]struct{}
	closed    bool
	access    map[string]*grant // access token -> grant
	refresh   map[string]*grant // refresh token -> grant; used ones kept, marked dead
	devices   map[string]*device
	codes     map[string]*authCode
	accounts  map[string]any // service account email -> public key
	refreshes map[string]int
	failN     int
	failCode  int
	slowN     int
	tooFast   int
	requests  int
	delay     time.Duration
	loginAs   string
	claimAs   string        // address the ID tokens name instead of the user; see SetIDTokenMailbox
	pause     chan struct{} // closed by resume; nil when not paused
	held      chan struct{}
	issuer    string              // "" is URL(); see SetIssuer
	audience  string              // "" is the client; see SetIDTokenAudience
	amr       map[string][]string // mailbox -> amr claim; see SetAMR
	roles     map[string][]string // mailbox -> roles claim; see SetRoles
	// Browser sign-in (see SetInteractive): pending authorization
	// requests waiting for the form, sign-in sessions by cookie, and when
	// each mailbox last signed in (its auth_time).
	interactive bool
	pending     map[string]*authRequest
	sessions    map[string]string // session cookie -> mailbox
	signIns     map[string]time.Time
}

// grant is what an access or refresh token stands for.
type grant struct {
	mailbox  string // "" for app tokens, valid for every mailbox
	clientID string
	scope    string
	authTime time.Time // when the user signed in (auth_time of ID tokens)
	expires  time.Time
	dead     bool
}

// NewServer starts a server on 127.0.0.1 with a random port.
func NewServer(opts *Options) (*Server, error) {
	s := &Server{
		conns: map[net.Conn]struct{}{}, access: map[string]*grant{},
		refresh: map[string]*grant{}, devices: map[string]*device{},
		codes: map[string]*authCode{}, accounts: map[string]any{},
		refreshes: map[string]int{}, amr: map[string][]string{}, roles: map[string][]string{},
		pending: map[string]*authRequest{}, sessions: map[string]string{},
		signIns: map[string]time.Time{},
	}
	if opts != nil {
		s.opts = *opts
	}
	s.defaults()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("fakeidp: generate signing key: %w", err)
	}
	s.key, s.keyID = key, randToken("k-")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakeidp: listen: %w", err)
	}
	s.addr = ln.Addr().String()
	s.srv = &http.Server{Handler: s.routes(), ConnState: s.trackConn,
		ReadHeaderTimeout: 10 * time.Second}
	s.serve(ln)
	return s, nil
}

func (s *Server) defaults() {
	if s.opts.AccessTTL <= 0 {
		s.opts.AccessTTL = time.Hour
	}
	if s.opts.DeviceTTL <= 0 {
		s.opts.DeviceTTL = 10 * time.Minute
	}
	if s.opts.DeviceInterval <= 0 {
		s.opts.DeviceInterval = 1
	}
	s.log = s.opts.Logger
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.handleToken)
	mux.HandleFunc("POST /devicecode", s.handleDeviceAuth)
	mux.HandleFunc("GET /authorize", s.handleAuthorize)
	mux.HandleFunc("POST /authorize", s.handleSignInForm)
	mux.HandleFunc("GET /.well-known/openid-configuration", s.handleDiscovery)
	mux.HandleFunc("GET /keys", s.handleKeys)
	mux.HandleFunc("/introspect", s.handleIntrospect)
	mux.HandleFunc("/device", s.handleDevicePage)
	return mux
}

func (s *Server) serve(ln net.Listener) {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) &&
			!errors.Is(err, net.ErrClosed) {
			s.log.Error("fakeidp: serve", "err", err)
		}
	}()
}

// trackConn remembers open connections so that SetDown can cut them.
func (s *Server) trackConn(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case http.StateNew:
		s.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(s.conns, c)
	}
}

// URL is the base URL, like "http://127.0.0.1:40123".
func (s *Server) URL() string { return "http://" + s.addr }

// TokenURL is the token endpoint (RFC 6749 section 3.2).
func (s *Server) TokenURL() string { return s.URL() + "/token" }

// DeviceAuthURL is the device authorization endpoint (RFC 8628 section 3.1).
func (s *Server) DeviceAuthURL() string { return s.URL() + "/devicecode" }

// AuthURL is the authorization endpoint (RFC 6749 section 3.1).
func (s *Server) AuthURL() string { return s.URL() + "/authorize" }

// IntrospectURL is the token introspection endpoint (RFC 7662). It takes
// the token as a POST form field "token", a "token" query parameter, or a
// bearer Authorization header (Dovecot's introspection modes).
func (s *Server) IntrospectURL() string { return s.URL() + "/introspect" }

// Close stops the server and cuts all connections.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	if s.pause != nil {
		close(s.pause)
		s.pause = nil
	}
	s.mu.Unlock()
	s.srv.Close()
}

// SetDown(true) closes the listener and every open connection, so clients
// get "connection refused"; SetDown(false) listens again on the same address.
func (s *Server) SetDown(down bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("fakeidp: server closed")
	}
	if down {
		if s.ln != nil {
			s.ln.Close()
			s.ln = nil
		}
		for c := range s.conns {
			c.Close()
		}
		return nil
	}
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("fakeidp: listen again: %w", err)
	}
	s.ln = ln
	go s.srv.Serve(ln)
	return nil
}

// FailNext makes the next n token requests fail with HTTP status (500, 503,
// 429...) before any grant is looked at.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failCode = n, status
}

// SetDelay makes every token request wait d first (a slow provider).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Pause holds every token request until resume is called; held receives a
// value each time a request starts waiting, so tests can order events
// without timing.
func (s *Server) Pause() (held <-chan struct{}, resume func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, h := make(chan struct{}), make(chan struct{}, 1024)
	s.pause, s.held = p, h
	var once sync.Once
	return h, func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.pause == p {
				close(p)
				s.pause = nil
			}
		})
	}
}

// gate applies Pause, SetDelay and FailNext to a token request. It reports
// false when it has answered the request itself.
func (s *Server) gate(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	s.requests++
	pause, held, delay := s.pause, s.held, s.delay
	s.mu.Unlock()
	if pause != nil {
		select {
		case held <- struct{}{}:
		default:
		}
		select {
		case <-pause:
		case <-r.Context().Done():
			return false
		}
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return false
		}
	}
	return s.failGate(w)
}

func (s *Server) failGate(w http.ResponseWriter) bool {
	s.mu.Lock()
	fail := s.failN > 0
	code := s.failCode
	if fail {
		s.failN--
	}
	s.mu.Unlock()
	if !fail {
		return true
	}
	if code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	oauthError(w, code, "temporarily_unavailable", "injected failure")
	return false
}

// Refreshes counts the refresh_token grants for mailbox that got past
// FailNext, successful or not.
func (s *Server) Refreshes(mailbox string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes[canon(mailbox)]
}

// TokenRequests counts every request to the token endpoint.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}
