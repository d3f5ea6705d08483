// Package web is the self-service portal (issue 14): users sign in at
// their provider and manage their own app passwords; admins list
// mailboxes and revoke for selected users. It sees only the admin
// operations (proxy/admin) and the identity check (SignIn), never the
// store or the OAuth code. Pages are html/template files embedded in the
// binary and parsed once in New; forms are plain HTML that work without
// JavaScript.
package web

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"mailgate/proxy"
	"mailgate/proxy/admin"
)

// SignIn is the identity check at the provider; cmd adapts *oauth.SignIn
// to it.
type SignIn interface {
	// AuthURL returns the provider's authorization URL for state, nonce
	// and the PKCE verifier; fresh asks for a new sign-in.
	AuthURL(ctx context.Context, state, nonce, verifier string, fresh bool) (string, error)
	// Finish exchanges code and verifies the ID token against nonce.
	Finish(ctx context.Context, code, verifier, nonce string) (*User, error)
}

// User is who signed in.
type User struct {
	Mailbox  string    // canonical
	AuthTime time.Time // when the user last authenticated at the provider
	MFA      bool      // the provider says the sign-in used more than a password
	Roles    []string  // app roles
}

// ErrMailboxRefused is what a SignIn's Finish wraps when the mailbox is not
// served here (accounts.domains): the user gets a page saying so instead
// of a generic failure. cmd's AllowMailbox wraps it.
var ErrMailboxRefused = errors.New("mailbox not served here")

// Options configure a Server. Admin and SignIn are required; a nil or zero
// field otherwise means none or the default its comment names.
type Options struct {
	Admin      *admin.Service  // the admin operation table: the portal's only way to the data
	SignIn     SignIn          // the identity check at the provider
	PublicURL  string          // https://mail.example.com; http:// only on loopback
	Admins     []string        // canonical mailboxes allowed on /admin
	AdminRole  string          // also allowed: users with this role ("" none)
	RequireMFA bool            // refuse creating a password unless User.MFA
	Settings   admin.Settings  // hostname and ports shown after create and put in the .mobileconfig
	TLSConfig  *tls.Config     // for implicit TLS listeners
	Throttle   *proxy.Throttle // the shared login throttle: sign-in failures count against it
	Limits     *proxy.Limits   // connection limits (shared)
	Logger     *slog.Logger    // nil: slog.Default()
}

// Server is the portal: an http.Handler, and the listeners serving it.
type Server struct {
	o     Options
	admin adminOps
	log   *slog.Logger
	mem   *memory
	pages *pages
	h     http.Handler // ServeHTTP's: headers, cross-origin check, routes
	idp   providerOrigin
	front *proxy.Front
	http  *http.Server
	now   func() time.Time
}

// adminOps is what the portal calls on *admin.Service; tests may stand in
// a failing one.
type adminOps interface {
	CreatePassword(context.Context, admin.CreateArgs) (admin.CreateResult, error)
	ListPasswords(context.Context, admin.ListArgs) ([]admin.AppPassword, error)
	RevokePassword(context.Context, admin.RevokeArgs) (admin.RevokeResult, error)
	RevokeAll(context.Context, admin.RevokeAllArgs) (admin.RevokeResult, error)
	Unlink(context.Context, admin.UnlinkArgs) (admin.UnlinkResult, error)
	Mailboxes(context.Context, admin.MailboxesArgs) (admin.MailboxesResult, error)
}

var _ adminOps = (*admin.Service)(nil)

// New returns a Server for opts. The templates are parsed here, once.
func New(opts *Options) (*Server, error) {
	if opts == nil || opts.Admin == nil || opts.SignIn == nil {
		return nil, errors.New("web: Admin and SignIn are required")
	}
	if err := checkPublicURL(opts.PublicURL); err != nil {
		return nil, err
	}
	s := &Server{o: *opts, admin: opts.Admin, now: time.Now, log: opts.Logger}
	p, err := parsePages(template.FuncMap{"direct": s.idp.known})
	if err != nil {
		return nil, err
	}
	s.pages = p
	if s.log == nil {
		s.log = slog.Default()
	}
	s.o.Admins = canonicalList(opts.Admins)
	s.mem = newMemory(func() time.Time { return s.now() })
	s.h = s.handler()
	s.front = proxy.NewFront(&proxy.FrontOptions{Proto: "web", Limits: opts.Limits,
		TLSConfig: opts.TLSConfig, Logger: s.log})
	s.http = s.newHTTPServer()
	return s, nil
}

// checkPublicURL accepts https URLs, and http ones on loopback only: the
// session cookie is Secure, and a browser keeps it over plain http only
// for a loopback origin.
func checkPublicURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("web: public url %q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("web: public url %q must be https (http only on loopback)", raw)
}

// canonicalList makes web.admins canonical as store.CanonicalMailbox
// makes the signed-in mailbox: spaces trimmed, ASCII letters folded and
// nothing else. Unicode lower-casing would turn an admin listed with the
// Kelvin sign (U+212A) into another mailbox's address, "k...", and make
// that mailbox's owner an admin.
func canonicalList(in []string) []string {
	out := make([]string, 0, len(in))
	for _, a := range in {
		out = append(out, strings.Map(asciiLower, strings.TrimSpace(a)))
	}
	return out
}

func asciiLower(r rune) rune {
	if 'A' <= r && r <= 'Z' {
		return r + 'a' - 'A'
	}
	return r
}

// ServeHTTP serves the portal.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.h.ServeHTTP(w, r) }

// handler is every route, behind the cross-origin check and the security
// headers. The routes read like the site map.
func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", staticHandler())
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("POST /auth/signin", s.signIn)
	mux.HandleFunc("GET /auth/callback", s.callback)
	mux.HandleFunc("POST /auth/signout", s.signOut)
	mux.HandleFunc("GET /passwords/new", s.user(s.newPasswordForm))
	mux.HandleFunc("POST /passwords", s.user(s.createPassword))
	mux.HandleFunc("POST /passwords/{id}/revoke", s.user(s.revokePassword))
	mux.HandleFunc("GET /passwords/revoke-all", s.user(s.confirmRevokeAll))
	mux.HandleFunc("POST /passwords/revoke-all", s.user(s.revokeAll))
	mux.HandleFunc("GET /profile/{token}", s.user(s.downloadProfile))
	mux.HandleFunc("GET /admin", s.adminOnly(s.adminPage))
	mux.HandleFunc("POST /admin/revoke-all", s.adminOnly(s.adminRevokeAll))
	mux.HandleFunc("GET /admin/mailbox/{addr}", s.adminOnly(s.adminMailbox))
	mux.HandleFunc("POST /admin/mailbox/{addr}/passwords/{id}/revoke", s.adminOnly(s.adminRevoke))
	mux.HandleFunc("POST /admin/mailbox/{addr}/unlink", s.adminOnly(s.adminUnlink))
	mux.HandleFunc("/", s.notFound)

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(s.crossOrigin))
	if s.o.PublicURL != "" {
		// Browsers without Sec-Fetch-Site are checked by Origin against
		// Host, which a proxy in front may have rewritten.
		u, _ := url.Parse(s.o.PublicURL)
		cop.AddTrustedOrigin(u.Scheme + "://" + u.Host)
	}
	return s.securityHeaders(cop.Handler(limitBody(mux)))
}

// maxForm bounds a request body: the largest form is /admin's selection
// of at most a page of addresses.
const maxForm = 64 << 10

func limitBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		h.ServeHTTP(w, r)
	})
}
