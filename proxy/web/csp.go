package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// csp allows nothing but the portal's own files: no inline script or
// style, no framing, forms only to the portal, and to the provider's
// sign-in page (formAction).
const cspBase = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// hstsValue keeps browsers on HTTPS for a year once they have seen the
// portal over it (RFC 6797), so that a network attacker cannot downgrade a
// later visit and read the session cookie or a new password. Subdomains
// are left out: they are the organisation's, not the portal's. Sent
// whenever public_url is https, also through a TLS-terminating proxy
// (browsers ignore it over plain HTTP, RFC 6797 section 8.1).
const hstsValue = "max-age=31536000"

// probeEvery bounds how often the provider is asked for its sign-in
// address while it is unknown (the provider may be down).
const (
	probeEvery   = 30 * time.Second
	probeTimeout = 3 * time.Second
)

// providerOrigin is the origin of the provider's authorization endpoint.
//
// Browsers apply the form-action of the page that sent a form to every
// redirect that follows it (Chromium blocks the redirect to the provider
// after POST /auth/signin under form-action 'self'), so the policy must
// name the provider. Its origin is only known from an authorization URL
// (discovery may put the endpoint anywhere), so it is learned from the
// first one, asked for ahead of the first page (probe). A page sent
// while it is unknown marks its sign-in forms without "direct", and the
// sign-in then answers with a page that moves on by itself instead of a
// redirect (see startSignIn).
type providerOrigin struct {
	origin atomic.Pointer[string]
	mu     sync.Mutex // one probe at a time
	last   time.Time  // of the last probe
}

func (p *providerOrigin) get() string {
	if o := p.origin.Load(); o != nil {
		return *o
	}
	return ""
}

// known is the template function "direct": the sign-in forms of a page
// whose policy names the provider say so.
func (p *providerOrigin) known() bool { return p.get() != "" }

// learn remembers the origin of an authorization URL.
func (p *providerOrigin) learn(authURL string) string {
	o := originOf(authURL)
	if o != "" && o != p.get() {
		p.origin.Store(&o)
	}
	return o
}

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// probe learns the provider's origin from an authorization URL made for
// nothing (its state is never stored, so it can never come back), at most
// once per probeEvery and by one request at a time.
func (s *Server) probe(ctx context.Context) {
	if s.idp.known() || !s.idp.mu.TryLock() {
		return
	}
	defer s.idp.mu.Unlock()
	now := s.now()
	if now.Sub(s.idp.last) < probeEvery {
		return
	}
	s.idp.last = now
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	to, err := s.o.SignIn.AuthURL(ctx, newToken(), newToken(), oauth2.GenerateVerifier(), false)
	if err != nil {
		s.log.Warn("web: provider sign-in address unknown", "proto", "web", "err", err)
		return
	}
	s.idp.learn(to)
}

// securityHeaders sets the headers every response carries.
func (s *Server) securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.probe(r.Context())
		csp := cspBase
		if o := s.idp.get(); o != "" {
			csp += " " + o
		}
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		if strings.HasPrefix(s.o.PublicURL, "https://") {
			hd.Set("Strict-Transport-Security", hstsValue)
		}
		h.ServeHTTP(w, r)
	})
}
