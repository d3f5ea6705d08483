package oauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// ErrSignIn means a sign-in failed at the provider or its ID token was
// refused: a bad, used or expired code, a wrong PKCE verifier, a wrong
// issuer, audience or nonce, an expired or badly signed ID token, or a
// provider that cannot be reached (then the error also wraps
// ErrTransient).
var ErrSignIn = errors.New("sign-in failed")

// googleIssuer is Google's OIDC issuer.
const googleIssuer = "https://accounts.google.com"

// SignInOptions configures a SignIn.
type SignInOptions struct {
	// Manager links the signed-in mailbox with the delegated flow; nil with
	// the app flow, where the sign-in only identifies the user.
	Manager      *Manager
	Issuer       string // OIDC issuer, exactly as in the discovery document
	ClientID     string
	ClientSecret string
	RedirectURL  string // web.public_url + "/auth/callback"
	// Scopes asked for; nil: openid email profile, and with a Manager its
	// delegated scopes and offline_access as well.
	Scopes []string
	// AllowMailbox refuses a mailbox before anything is stored
	// (accounts.domains); nil allows any.
	AllowMailbox func(mailbox string) error
	HTTPClient   *http.Client // nil: 10 s per request, 5 s to connect
	Logger       *slog.Logger
}

// Identity is who signed in.
type Identity struct {
	Mailbox  string    // canonical
	AuthTime time.Time // auth_time claim; zero when the ID token has none
	MFA      bool      // amr names a second factor (RFC 8176)
	Roles    []string  // "roles" claim (Entra ID app roles)
}

// SignIn signs users in at the provider with the authorization code flow
// and PKCE (OpenID Connect Core 1.0 section 3.1, RFC 7636); the ID token is
// verified with coreos/go-oidc: signature from the provider's published
// keys, issuer, audience, expiry, and the nonce here. Discovery happens on
// first use and again after a failure, so the daemon starts while the
// provider is down. It is safe for concurrent use.
type SignIn struct {
	opts  SignInOptions
	httpc *http.Client
	log   *slog.Logger

	mu       sync.Mutex // held during discovery: one at a time
	cfg      *oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// NewSignIn checks opts and returns a SignIn. It makes no request.
func NewSignIn(opts *SignInOptions) (*SignIn, error) {
	if opts == nil {
		return nil, errors.New("oauth: sign-in: no options")
	}
	s := &SignIn{opts: *opts, httpc: opts.HTTPClient, log: opts.Logger}
	u, err := url.Parse(opts.RedirectURL)
	switch {
	case opts.Issuer == "":
		return nil, errors.New("oauth: sign-in: no issuer")
	case opts.ClientID == "":
		return nil, errors.New("oauth: sign-in: no client ID")
	case err != nil || !u.IsAbs() || u.Host == "":
		return nil, fmt.Errorf("oauth: sign-in: redirect URL %q is not an absolute URL", opts.RedirectURL)
	case opts.Manager != nil && opts.Manager.cfg == nil:
		return nil, fmt.Errorf("%w: sign-in links mailboxes only with the delegated flow", ErrUnsupported)
	}
	if s.httpc == nil {
		s.httpc = defaultHTTPClient()
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s.opts.Scopes = s.scopes()
	return s, nil
}

// scopes are the configured scopes, or the defaults, always with openid
// (OIDC Core 3.1.2.1: without it the provider sends no ID token).
func (s *SignIn) scopes() []string {
	sc := slices.Clone(s.opts.Scopes)
	if sc == nil {
		sc = []string{"openid", "email", "profile"}
		if m := s.opts.Manager; m != nil {
			sc = append(sc, m.cfg.Scopes...)
			if m.provider != Google { // Google: access_type=offline instead
				sc = append(sc, "offline_access")
			}
		}
	}
	if !slices.Contains(sc, "openid") {
		sc = append(sc, "openid")
	}
	slices.Sort(sc)
	return slices.Compact(sc)
}

// discover fetches the provider's metadata once it can: until it succeeds,
// every call tries again.
func (s *SignIn) discover(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg != nil {
		return s.cfg, s.verifier, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, s.httpc), s.opts.Issuer)
	if err != nil {
		s.log.Warn("oauth: sign-in: discovery failed, will try again", "upstream", s.opts.Issuer, "err", err)
		var mismatch *oidc.IssuerMismatchError
		if errors.As(err, &mismatch) {
			return nil, nil, fmt.Errorf("%w: discovery: %w", ErrSignIn, err)
		}
		return nil, nil, fmt.Errorf("%w: %w: discovery: %w", ErrSignIn, ErrTransient, err)
	}
	ep := p.Endpoint()
	ep.AuthStyle = authStyle(p, s.opts.ClientSecret)
	s.cfg = &oauth2.Config{ClientID: s.opts.ClientID, ClientSecret: s.opts.ClientSecret,
		Endpoint: ep, RedirectURL: s.opts.RedirectURL, Scopes: s.opts.Scopes}
	s.verifier = p.Verifier(&oidc.Config{ClientID: s.opts.ClientID})
	return s.cfg, s.verifier, nil
}

func (s *SignIn) google() bool {
	return s.opts.Issuer == googleIssuer || (s.opts.Manager != nil && s.opts.Manager.provider == Google)
}

// authStyle picks how the client authenticates at the token endpoint from
// what discovery lists: HTTP Basic, the default of OIDC Discovery 1.0
// section 3 and the one RFC 6749 section 2.3.1 requires of servers, unless
// only form fields are offered. A public client sends its ID in the form.
func authStyle(p *oidc.Provider, secret string) oauth2.AuthStyle {
	var meta struct {
		Methods []string `json:"token_endpoint_auth_methods_supported"`
	}
	p.Claims(&meta)
	if secret == "" || (len(meta.Methods) > 0 && !slices.Contains(meta.Methods, "client_secret_basic")) {
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleInHeader
}

// AuthURL returns the provider's authorization URL with state, nonce and
// the PKCE S256 challenge of verifier (RFC 7636 section 4.3). fresh asks the
// provider for a new sign-in: prompt=login and max_age=0 (OIDC Core
// 3.1.2.1), so that auth_time is now.
func (s *SignIn) AuthURL(ctx context.Context, state, nonce, verifier string, fresh bool) (string, error) {
	if state == "" || nonce == "" || verifier == "" {
		return "", fmt.Errorf("%w: state, nonce and verifier are required", ErrSignIn)
	}
	cfg, _, err := s.discover(ctx)
	if err != nil {
		return "", err
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)}
	prompt := ""
	if fresh {
		prompt = "login"
		opts = append(opts, oauth2.SetAuthURLParam("max_age", "0"))
	}
	if s.google() {
		// Google knows no prompt=login (max_age does the work). As in
		// StartAuthCodeLink, it issues a refresh token only for offline
		// access, and again on a repeated sign-in only when consent is asked.
		prompt = ""
		if s.opts.Manager != nil {
			opts = append(opts, oauth2.AccessTypeOffline)
			prompt = "consent"
		}
	}
	if prompt != "" {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", prompt))
	}
	return cfg.AuthCodeURL(state, opts...), nil
}
