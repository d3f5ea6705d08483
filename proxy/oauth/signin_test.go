package oauth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"mailgate/internal/fakeidp"
	"mailgate/internal/proxytest"
)

const (
	testClientSecret = "s3cret"
	testCallback     = "http://127.0.0.1:8443/auth/callback"
)

// signInEnv is a provider, a SignIn at it and, for the delegated flow, a
// Manager with its store and upstream.
type signInEnv struct {
	srv   *fakeidp.Server
	s     *SignIn
	store *memStore
	up    *fakeUpstream
	logs  *proxytest.LogBuffer
}

func newSignInEnv(t *testing.T, delegated bool, edit func(*SignInOptions)) *signInEnv {
	t.Helper()
	e := &signInEnv{srv: newServer(t, &fakeidp.Options{ClientID: "cid", ClientSecret: testClientSecret}),
		store: newMemStore(), logs: &proxytest.LogBuffer{}}
	opts := &SignInOptions{Issuer: e.srv.URL(), ClientID: "cid", ClientSecret: testClientSecret,
		RedirectURL: testCallback, Logger: slog.New(slog.NewTextHandler(e.logs, nil))}
	if delegated {
		mo := delegatedOptions(e.srv, e.store)
		mo.ClientSecret = testClientSecret
		e.up = upstream(e.srv)
		mo.VerifyMailbox = e.up.login
		opts.Manager = newManager(t, mo)
	}
	if edit != nil {
		edit(opts)
	}
	s, err := NewSignIn(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	return e
}

// attempt is one sign-in in progress: what the portal keeps between the
// redirect to the provider and the callback.
type attempt struct {
	state, nonce, verifier string
	authURL                string
	code                   string
}

// start builds the authorization URL and plays the browser at the
// provider (signed in as mailbox), returning the code of the callback.
func (e *signInEnv) start(t *testing.T, mailbox string, fresh bool) *attempt {
	t.Helper()
	a := &attempt{state: "st-" + mailbox, nonce: "n-" + mailbox, verifier: oauth2.GenerateVerifier()}
	var err error
	if a.authURL, err = e.s.AuthURL(t.Context(), a.state, a.nonce, a.verifier, fresh); err != nil {
		t.Fatal(err)
	}
	e.srv.SetAuthorizeUser(mailbox)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(a.authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || !strings.HasPrefix(loc.String(), testCallback+"?") {
		t.Fatalf("authorize: %s, Location %v", resp.Status, loc)
	}
	if loc.Query().Get("state") != a.state {
		t.Fatalf("state %q, want %q", loc.Query().Get("state"), a.state)
	}
	a.code = loc.Query().Get("code")
	return a
}

func (e *signInEnv) finish(t *testing.T, a *attempt) (*Identity, error) {
	t.Helper()
	return e.s.Finish(t.Context(), a.code, a.verifier, a.nonce)
}

// TestSignInApp: with the app flow a sign-in only identifies the user.
func TestSignInApp(t *testing.T) {
	e := newSignInEnv(t, false, nil)
	e.srv.SetRoles("alice@x.org", []string{"mailgate.admin"})
	id, err := e.finish(t, e.start(t, "Alice@X.org", false))
	if err != nil {
		t.Fatal(err)
	}
	if id.Mailbox != "alice@x.org" || !id.MFA || !slices.Equal(id.Roles, []string{"mailgate.admin"}) ||
		time.Since(id.AuthTime) > time.Minute {
		t.Fatalf("identity %+v", id)
	}
	e.srv.SetAMR("bob@x.org", []string{"pwd"})
	if id, err = e.finish(t, e.start(t, "bob@x.org", false)); err != nil || id.MFA || id.Roles != nil {
		t.Fatalf("password-only sign-in: %+v %v", id, err)
	}
	if !strings.Contains(e.logs.String(), "user=alice@x.org") {
		t.Errorf("no log line names the mailbox:\n%s", e.logs)
	}
}

// TestSignInLinks: with the delegated flow the sign-in links the mailbox
// as "account link" does: one upstream login, the refresh token stored,
// the access token cached.
func TestSignInLinks(t *testing.T) {
	e := newSignInEnv(t, true, nil)
	id, err := e.finish(t, e.start(t, "alice@x.org", false))
	if err != nil {
		t.Fatal(err)
	}
	if id.Mailbox != "alice@x.org" || e.store.token("alice@x.org") == "" || e.up.loginCount() != 1 {
		t.Fatalf("identity %+v, refresh token %q, upstream logins %d",
			id, e.store.token("alice@x.org"), e.up.loginCount())
	}
	tok, err := e.s.opts.Manager.Token(t.Context(), "alice@x.org")
	if err != nil || !e.srv.ValidFor(tok, "alice@x.org") || e.srv.Refreshes("alice@x.org") != 0 {
		t.Fatalf("token after the sign-in: %v (refreshes %d)", err, e.srv.Refreshes("alice@x.org"))
	}
}

// TestAuthURL: the URL carries the PKCE S256 challenge, state and nonce,
// the scopes, and asks for a fresh sign-in only when told to.
func TestAuthURL(t *testing.T) {
	e := newSignInEnv(t, true, nil)
	raw, err := e.s.AuthURL(t.Context(), "st", "nc", "ver-ifier", false)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(raw)
	q := u.Query()
	want := map[string]string{"state": "st", "nonce": "nc", "code_challenge_method": "S256",
		"code_challenge": oauth2.S256ChallengeFromVerifier("ver-ifier"), "client_id": "cid",
		"redirect_uri": testCallback, "response_type": "code"}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	scopes := strings.Fields(q.Get("scope"))
	for _, s := range append([]string{"openid", "email", "profile", "offline_access"}, microsoftDelegated...) {
		if !slices.Contains(scopes, s) {
			t.Errorf("scope %q lacks %s", q.Get("scope"), s)
		}
	}
	if !strings.HasPrefix(raw, e.srv.AuthURL()+"?") || q.Has("prompt") || q.Has("max_age") {
		t.Errorf("not fresh: %s", raw)
	}
	raw, _ = e.s.AuthURL(t.Context(), "st", "nc", "ver-ifier", true)
	if q, _ := url.ParseQuery(raw[strings.Index(raw, "?")+1:]); q.Get("prompt") != "login" || q.Get("max_age") != "0" {
		t.Errorf("fresh: %s", raw)
	}
	if _, err := e.s.AuthURL(t.Context(), "st", "", "v", false); !errors.Is(err, ErrSignIn) {
		t.Errorf("no nonce: %v", err)
	}
}

// TestSignInFresh: a fresh sign-in has a new auth_time; otherwise the
// provider's earlier sign-in stands.
func TestSignInFresh(t *testing.T) {
	e := newSignInEnv(t, false, nil)
	if _, err := e.finish(t, e.start(t, "alice@x.org", false)); err != nil {
		t.Fatal(err)
	}
	e.srv.AgeSignIns(time.Hour)
	id, err := e.finish(t, e.start(t, "alice@x.org", false))
	if err != nil || time.Since(id.AuthTime) < 59*time.Minute {
		t.Fatalf("single sign-on: auth time %v, %v", id, err)
	}
	if id, err = e.finish(t, e.start(t, "alice@x.org", true)); err != nil || time.Since(id.AuthTime) > time.Minute {
		t.Fatalf("fresh sign-in: %+v, %v", id, err)
	}
}

// TestSignInRefused: each bad callback fails with ErrSignIn, links nothing
// and never logs the code or the verifier.
func TestSignInRefused(t *testing.T) {
	tests := []struct {
		name string
		bad  func(e *signInEnv, a *attempt)
	}{
		{"wrong nonce", func(_ *signInEnv, a *attempt) { a.nonce = "n-other" }},
		{"missing nonce", func(_ *signInEnv, a *attempt) { a.nonce = "" }},
		{"unknown code", func(_ *signInEnv, a *attempt) { a.code = "ac-forged" }},
		{"missing verifier", func(_ *signInEnv, a *attempt) { a.verifier = "" }},
		{"wrong verifier", func(_ *signInEnv, a *attempt) { a.verifier = oauth2.GenerateVerifier() }},
		{"wrong audience", func(e *signInEnv, _ *attempt) { e.srv.SetIDTokenAudience("other-app") }},
		{"wrong issuer", func(e *signInEnv, _ *attempt) { e.srv.SetIssuer("https://login.example.net") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSignInEnv(t, true, nil)
			a := e.start(t, "alice@x.org", false)
			code, verifier := a.code, a.verifier
			tt.bad(e, a)
			id, err := e.finish(t, a)
			t.Logf("refused: %v", err)
			if !errors.Is(err, ErrSignIn) {
				t.Fatalf("Finish = %+v, %v; want ErrSignIn", id, err)
			}
			if e.store.token("alice@x.org") != "" || e.up.loginCount() != 0 {
				t.Fatalf("linked after a refused sign-in (%d upstream logins)", e.up.loginCount())
			}
			if logs := e.logs.String(); strings.Contains(logs, code) || strings.Contains(logs, verifier) {
				t.Fatalf("code or verifier logged:\n%s", logs)
			}
		})
	}
}

// TestSignInReplay: a code works once.
func TestSignInReplay(t *testing.T) {
	e := newSignInEnv(t, false, nil)
	a := e.start(t, "alice@x.org", false)
	if _, err := e.finish(t, a); err != nil {
		t.Fatal(err)
	}
	if _, err := e.finish(t, a); !errors.Is(err, ErrSignIn) || errors.Is(err, ErrTransient) {
		t.Fatalf("replayed code: %v", err)
	}
}

// TestSignInWrongMailbox: an ID token naming a mailbox the token does not
// open (an Entra ID tenant admin can set the claims) links nothing.
func TestSignInWrongMailbox(t *testing.T) {
	e := newSignInEnv(t, true, nil)
	e.srv.SetIDTokenMailbox("victim@x.org")
	_, err := e.finish(t, e.start(t, "mallory@x.org", false))
	if !errors.Is(err, ErrWrongMailbox) {
		t.Fatalf("Finish = %v, want ErrWrongMailbox", err)
	}
	if e.store.token("victim@x.org") != "" || e.store.token("mallory@x.org") != "" || e.up.loginCount() != 1 {
		t.Fatalf("stored a link (%d upstream logins)", e.up.loginCount())
	}
}

// TestSignInAllowMailbox: a refused mailbox gets AllowMailbox's error and
// nothing is stored or proven upstream.
func TestSignInAllowMailbox(t *testing.T) {
	errOutside := errors.New("outside accounts.domains")
	e := newSignInEnv(t, true, func(o *SignInOptions) {
		o.AllowMailbox = func(mailbox string) error {
			if !strings.HasSuffix(mailbox, "@x.org") {
				return errOutside
			}
			return nil
		}
	})
	if _, err := e.finish(t, e.start(t, "eve@y.org", false)); !errors.Is(err, errOutside) {
		t.Fatalf("Finish = %v, want the AllowMailbox error", err)
	}
	if e.store.token("eve@y.org") != "" || e.up.loginCount() != 0 {
		t.Fatal("stored a link for a refused mailbox")
	}
	if _, err := e.finish(t, e.start(t, "alice@x.org", false)); err != nil {
		t.Fatal(err)
	}
}

// TestSignInDiscovery: a provider down at start is discovered once it is
// up; an issuer that differs from the discovery document's (here by a
// trailing slash) is refused, not retried as an outage.
func TestSignInDiscovery(t *testing.T) {
	e := newSignInEnv(t, false, nil)
	e.srv.SetDown(true)
	_, err := e.s.AuthURL(t.Context(), "st", "nc", "v", false)
	if !errors.Is(err, ErrSignIn) || !errors.Is(err, ErrTransient) {
		t.Fatalf("AuthURL while down = %v, want ErrSignIn and ErrTransient", err)
	}
	if err := e.srv.SetDown(false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.finish(t, e.start(t, "alice@x.org", false)); err != nil {
		t.Fatalf("after the provider came up: %v", err)
	}

	e = newSignInEnv(t, false, func(o *SignInOptions) { o.Issuer += "/" })
	_, err = e.s.AuthURL(t.Context(), "st", "nc", "v", false)
	if !errors.Is(err, ErrSignIn) || errors.Is(err, ErrTransient) {
		t.Fatalf("AuthURL with a mismatched issuer = %v", err)
	}
}

func TestNewSignIn(t *testing.T) {
	srv := newServer(t, nil)
	app := newManager(t, &Options{Provider: Microsoft, Flow: App, Tenant: "contoso", ClientID: "cid",
		ClientSecret: "s", TokenURL: srv.TokenURL()})
	good := SignInOptions{Issuer: srv.URL(), ClientID: "cid", RedirectURL: testCallback}
	for name, edit := range map[string]func(*SignInOptions){
		"no issuer":       func(o *SignInOptions) { o.Issuer = "" },
		"no client":       func(o *SignInOptions) { o.ClientID = "" },
		"relative return": func(o *SignInOptions) { o.RedirectURL = "/auth/callback" },
		"app manager":     func(o *SignInOptions) { o.Manager = app },
	} {
		o := good
		edit(&o)
		if _, err := NewSignIn(&o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewSignIn(&good); err != nil {
		t.Fatal(err)
	}
}

// TestLinkToken: a token from elsewhere links only with a refresh token
// and after the upstream check.
func TestLinkToken(t *testing.T) {
	srv := newServer(t, nil)
	store := newMemStore()
	m := newManager(t, delegatedOptions(srv, store))
	at := srv.MintAccessToken("alice@x.org")
	if err := m.LinkToken(context.Background(), "alice@x.org", &oauth2.Token{AccessToken: at}); err == nil {
		t.Fatal("linked without a refresh token")
	}
	tok := &oauth2.Token{AccessToken: at, RefreshToken: srv.IssueRefreshToken("alice@x.org")}
	if err := m.LinkToken(context.Background(), "bob@x.org", tok); !errors.Is(err, ErrWrongMailbox) {
		t.Fatalf("alice's token linked bob: %v", err)
	}
	if err := m.LinkToken(context.Background(), "Alice@x.org", tok); err != nil || store.token("alice@x.org") == "" {
		t.Fatalf("LinkToken: %v", err)
	}
}

// TestSignInClaimsMailbox: the mailbox is the email claim, or
// preferred_username when there is none; an email the provider marks
// unverified refuses the sign-in instead of falling back.
func TestSignInClaimsMailbox(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    signInClaims
		want string // "" for a refusal
	}{
		{"email", signInClaims{Email: "Ann@Example.com", PreferredUsername: "ann.upn@example.com"}, "ann@example.com"},
		{"email verified", signInClaims{Email: "ann@example.com", EmailVerified: true}, "ann@example.com"},
		{"email verified as a string", signInClaims{Email: "ann@example.com", EmailVerified: "true"}, "ann@example.com"},
		{"no email: the UPN", signInClaims{PreferredUsername: "ann@example.com"}, "ann@example.com"},
		{"email unverified", signInClaims{Email: "ann@example.com", EmailVerified: false, PreferredUsername: "victim@example.com"}, ""},
		{"email unverified as a string", signInClaims{Email: "ann@example.com", EmailVerified: "false", PreferredUsername: "victim@example.com"}, ""},
		{"neither", signInClaims{}, ""},
		{"not a mailbox", signInClaims{PreferredUsername: "ann"}, ""},
	} {
		got, err := tt.c.mailbox()
		switch {
		case tt.want == "" && (err == nil || !errors.Is(err, ErrSignIn)):
			t.Errorf("%s: %q, %v; want an ErrSignIn", tt.name, got, err)
		case tt.want != "" && (err != nil || got != tt.want):
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}
