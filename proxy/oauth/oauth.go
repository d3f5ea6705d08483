// Package oauth gets OAuth 2.0 access tokens for upstream mailboxes from
// Microsoft Entra ID, Google or a generic provider: it links mailboxes
// (device flow, authorization code with PKCE), keeps refresh tokens in a
// TokenStore, caches access tokens and refreshes each one once however many
// connections ask at the same time.
package oauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/jwt"
	"golang.org/x/sync/singleflight"

	"mailgate/store"
)

// Provider is the identity provider that issues the tokens. Its value is
// also the key under which the store keeps a mailbox's refresh token.
type Provider string

// The providers.
const (
	Microsoft Provider = "microsoft"
	Google    Provider = "google"
	Generic   Provider = "generic"
)

// Flow is the OAuth grant used to get tokens.
type Flow string

// The flows.
const (
	Delegated Flow = "delegated" // a user links the mailbox; refresh tokens stored
	App       Flow = "app"       // client credentials or a Google service account
)

// Options configure a Manager. Zero fields take sensible defaults.
type Options struct {
	Provider Provider // Microsoft, Google or Generic
	Flow     Flow     // Delegated (default) or App
	Tenant   string   // Microsoft tenant ID or domain; "common" if empty (delegated only)
	// AllowedTenants are the Entra ID tenant IDs whose users may link: the
	// ID token's tid claim must be one of them. Required for Microsoft's
	// delegated flow on "common", "organizations" or "consumers".
	AllowedTenants []string
	ClientID       string
	ClientSecret   string
	// Endpoint overrides; Generic needs TokenURL and, for linking,
	// DeviceAuthURL or AuthURL.
	TokenURL, DeviceAuthURL, AuthURL string
	RedirectURL                      string // auth-code linking; default "http://localhost"
	Scopes                           []string
	ServiceAccountJSON               []byte // Google app flow: the key file
	Store                            TokenStore
	HTTPClient                       *http.Client // default: 10 s per request, 5 s to connect
	Logger                           *slog.Logger
	Now                              func() time.Time
	// VerifyMailbox checks at link time that accessToken opens mailbox
	// (cmd logs in upstream with XOAUTH2). Every delegated link calls it
	// before the refresh token is stored, whatever the ID token says; nil
	// refuses every link. Return an error wrapping ErrWrongMailbox when the
	// upstream refuses the token.
	VerifyMailbox func(ctx context.Context, mailbox, accessToken string) error
	// OnToken is told of every token request to the provider (a refresh,
	// a client-credentials or service-account grant): result is "ok",
	// "relink", "transient" or "config", took how long it lasted. For
	// metrics; nil tells nothing.
	OnToken func(result string, took time.Duration)
	// OnLinkState is told when a mailbox's link changes state: "needs_relink"
	// (the provider refused its grant), "linked" (linked again, or a refresh
	// worked after needs_relink). Once per change, never once per login;
	// for alerts; nil tells nothing.
	OnLinkState func(mailbox, state, reason string)
}

// TokenStore keeps refresh tokens and the shared access token (sealed, in
// cmd's bbolt or PostgreSQL store). Several mailgate instances on one
// PostgreSQL database share it, so that they make one refresh per expiry
// between them, not one each.
type TokenStore interface {
	// LoadRefreshToken returns "" and nil when mailbox is not linked.
	LoadRefreshToken(provider, mailbox string) (string, error)
	// SaveRefreshToken stores token and records the time of the refresh;
	// it clears the shared access token (a new link starts afresh).
	SaveRefreshToken(provider, mailbox, token string) error
	// MarkRelink records that the provider refused the refresh token and
	// why, so the admin sees which mailboxes need linking again.
	MarkRelink(provider, mailbox, reason string) error
	// LoadToken returns the refresh token and the shared access token with
	// its expiry; store.Token{} when mailbox is not linked.
	LoadToken(provider, mailbox string) (store.Token, error)
	// SaveToken stores a refresh (rotated or not) and the access token it
	// gave, in one write, after every successful refresh.
	SaveToken(provider, mailbox string, t store.Token) error
	// ForgetAccess clears the shared access token if it is still access:
	// the upstream refused it, and no instance must take it again.
	ForgetAccess(provider, mailbox, access string) error
	// LockRefresh holds the mailbox's refresh lock across every instance on
	// the store until unlock is called; it waits at most until ctx ends.
	LockRefresh(ctx context.Context, provider, mailbox string) (unlock func(), err error)
}

var (
	// ErrRelink means the mailbox must be linked again: not linked, or the
	// provider said the grant is dead (invalid_grant, interaction_required).
	// Clients get IMAP NO [AUTHENTICATIONFAILED]. The error text carries the
	// provider's reason, like "AADSTS70043".
	ErrRelink = errors.New("oauth: mailbox must be linked again")
	// ErrTransient means "try later": network errors, timeouts, 5xx, 429,
	// and client setups the provider refuses (ErrConfig). The refresh
	// token is kept. Clients get IMAP NO [UNAVAILABLE].
	ErrTransient = errors.New("oauth: identity provider unavailable")
	// ErrConfig means the provider refused our client (invalid_client,
	// unauthorized_client, invalid_scope...): an admin must fix the app
	// registration. Such errors also match ErrTransient, because the
	// mailbox's grant is fine and must not be dropped.
	ErrConfig = errors.New("oauth: provider refused the client configuration")
	// ErrWrongMailbox means a link was approved by another account.
	ErrWrongMailbox = errors.New("oauth: token belongs to another mailbox")
	// ErrTenant means a link was approved from an Entra ID tenant outside
	// Options.AllowedTenants.
	ErrTenant = errors.New("oauth: sign-in from a tenant that is not allowed")
	// ErrUnverified means a link could not be proven: no upstream login
	// (Options.VerifyMailbox) is set.
	ErrUnverified = errors.New("oauth: link cannot be verified")
	// ErrDenied means the user declined the link request.
	ErrDenied = errors.New("oauth: link request denied")
	// ErrExpired means the link request expired before approval.
	ErrExpired = errors.New("oauth: link request expired")
	// ErrUnsupported means the provider or flow has no such operation.
	ErrUnsupported = errors.New("oauth: not supported by this provider or flow")
)

// Manager hands out access tokens and links mailboxes. It is safe for
// concurrent use.
type Manager struct {
	provider Provider
	flow     Flow
	cfg      *oauth2.Config            // delegated
	cc       *clientcredentials.Config // Microsoft and generic app flow
	jwt      *jwt.Config               // Google app flow; Subject set per call
	store    TokenStore
	httpc    *http.Client
	log      *slog.Logger
	now      func() time.Time
	verify   func(ctx context.Context, mailbox, accessToken string) error
	// allowedTenants are lower-case tenant IDs; empty accepts any tid.
	allowedTenants []string
	backoff        time.Duration
	// hooks are Options.OnToken and Options.OnLinkState, kept for the
	// files that call them (token.go; errors.go, link.go); nil: no-ops.
	onToken     func(result string, took time.Duration)
	onLinkState func(mailbox, state, reason string)

	cache sync.Map // key -> *entry
	group singleflight.Group
}

// New checks opts and returns a Manager.
func New(opts *Options) (*Manager, error) {
	if opts == nil {
		return nil, errors.New("oauth: no options")
	}
	o := *opts
	o.Provider, o.Flow = Provider(strings.ToLower(string(o.Provider))), Flow(strings.ToLower(string(o.Flow)))
	if o.Flow == "" {
		o.Flow = Delegated
	}
	m := &Manager{provider: o.Provider, flow: o.Flow, store: o.Store, httpc: o.HTTPClient,
		log: o.Logger, now: o.Now, verify: o.VerifyMailbox, backoff: 200 * time.Millisecond,
		onToken: o.OnToken, onLinkState: o.OnLinkState}
	for _, t := range o.AllowedTenants {
		m.allowedTenants = append(m.allowedTenants, strings.ToLower(strings.TrimSpace(t)))
	}
	if err := m.setup(&o); err != nil {
		return nil, fmt.Errorf("oauth: %s %s flow: %w", o.Provider, o.Flow, err)
	}
	if m.httpc == nil {
		m.httpc = defaultHTTPClient()
	}
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m, nil
}

// defaultHTTPClient bounds every call to the provider: a hung provider must
// turn into ErrTransient while the client still waits for its login reply.
func defaultHTTPClient() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, CheckRedirect: noPostRedirect,
		Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, DialContext: d.DialContext,
			TLSHandshakeTimeout: 5 * time.Second, ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true,
		}}
}

// noPostRedirect stops at a redirect of a POST: the token and device
// authorization endpoints (RFC 6749 section 3.2, RFC 8628 section 3.1) are
// fixed URLs, and on a 307 or 308 the client would send the form again,
// with the refresh token, code or client secret, wherever the Location
// points, plain http included. The redirect is then the answer, which the
// oauth2 package reports as an error. GETs (OIDC discovery, the key set)
// follow redirects as usual.
func noPostRedirect(req *http.Request, via []*http.Request) error {
	if via[0].Method != http.MethodGet && via[0].Method != http.MethodHead {
		return http.ErrUseLastResponse
	}
	if len(via) >= 10 { // net/http's own limit
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// ProviderName is "microsoft", "google" or "generic", the store's key.
func (m *Manager) ProviderName() string { return string(m.provider) }

// httpCtx makes the oauth2 package use our HTTP client.
func (m *Manager) httpCtx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, m.httpc)
}

// canonical is the form of a mailbox address used as cache and store key:
// the store's own (store.CanonicalMailbox folds ASCII letters only), so
// that a token is looked up under the key the store files it under. Unicode
// lower-casing would make "\u212Aim@x" (a Kelvin sign) the key of
// "kim@x". Something that is not a mailbox is only trimmed; it matches no
// stored one.
func canonical(mailbox string) string {
	if m, err := store.CanonicalMailbox(mailbox); err == nil {
		return m
	}
	return strings.TrimSpace(mailbox)
}
