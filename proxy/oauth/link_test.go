package oauth

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"mailgate/internal/fakeidp"
)

const alice, bob = "alice@contoso.com", "bob@contoso.com"

// startDevice starts a device link for alice and returns the finish result
// channel.
func startDevice(t *testing.T, ctx context.Context, m *Manager, srv *fakeidp.Server) (*DeviceCode, chan error) {
	t.Helper()
	dc, err := m.StartDeviceLink(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(srv.PendingUserCodes(), dc.UserCode) || dc.Interval != 1 ||
		dc.VerificationURI == "" || dc.ExpiresIn <= 0 {
		t.Fatalf("device code %+v, pending %v", dc, srv.PendingUserCodes())
	}
	done := make(chan error, 1)
	go func() { done <- m.FinishDeviceLink(ctx, alice, dc) }()
	return dc, done
}

// waitPolls waits (without a deadline of its own) until the client has
// polled n times.
func waitPolls(srv *fakeidp.Server, userCode string, n int) {
	for srv.DevicePolls(userCode) < n {
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeviceLinkPendingThenApproved(t *testing.T) {
	t.Parallel()
	srv, store := newServer(t, nil), newMemStore()
	m := newManager(t, delegatedOptions(srv, store))
	dc, done := startDevice(t, t.Context(), m, srv)
	waitPolls(srv, dc.UserCode, 1) // got authorization_pending at least once
	if err := srv.ApproveDevice(dc.UserCode, "Alice@Contoso.com"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("FinishDeviceLink: %v", err)
	}
	if store.token(alice) == "" {
		t.Fatal("refresh token not saved")
	}
	tok := mustToken(t, m, alice)
	if !srv.ValidFor(tok, alice) || srv.Refreshes(alice) != 0 {
		t.Fatalf("token valid=%v refreshes=%d; want the link's token cached", srv.ValidFor(tok, alice), srv.Refreshes(alice))
	}
}

func TestDeviceLinkSlowDown(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	m := newManager(t, delegatedOptions(srv, newMemStore()))
	srv.SlowDown(1)
	dc, done := startDevice(t, t.Context(), m, srv)
	srv.ApproveDevice(dc.UserCode, alice)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Poll 1 got slow_down, poll 2 the token. A client that kept its
	// 1-second interval would have been caught polling too fast.
	if p, f := srv.DevicePolls(dc.UserCode), srv.TooFastPolls(); p != 2 || f != 0 {
		t.Fatalf("polls=%d tooFast=%d, want 2 and 0", p, f)
	}
}

func TestDeviceLinkDeniedExpiredCancelled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		act  func(srv *fakeidp.Server, userCode string, cancel func())
		want error
	}{
		{"denied", func(s *fakeidp.Server, uc string, _ func()) { s.DenyDevice(uc) }, ErrDenied},
		{"expired", func(s *fakeidp.Server, uc string, _ func()) { s.ExpireDevice(uc) }, ErrExpired},
		{"cancelled", func(_ *fakeidp.Server, _ string, c func()) { c() }, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, store := newServer(t, nil), newMemStore()
			m := newManager(t, delegatedOptions(srv, store))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			dc, done := startDevice(t, ctx, m, srv)
			tt.act(srv, dc.UserCode, cancel)
			if err := <-done; !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if store.token(alice) != "" {
				t.Fatal("token saved")
			}
		})
	}
}

func TestDeviceLinkWrongMailbox(t *testing.T) {
	t.Parallel()
	srv, store := newServer(t, nil), newMemStore()
	m := newManager(t, delegatedOptions(srv, store))
	dc, done := startDevice(t, t.Context(), m, srv)
	srv.ApproveDevice(dc.UserCode, bob)
	if err := <-done; !errors.Is(err, ErrWrongMailbox) {
		t.Fatalf("err = %v, want ErrWrongMailbox", err)
	}
	if store.token(alice) != "" || store.token(bob) != "" {
		t.Fatal("token saved")
	}
	if _, err := m.Token(t.Context(), alice); !errors.Is(err, ErrRelink) {
		t.Fatalf("Token after refused link: %v, want ErrRelink", err)
	}
}

// authorize plays the browser: it follows the link URL and returns the
// redirect target without loading it.
func authorize(t *testing.T, l *AuthCodeLink) string {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(l.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %s", resp.Status)
	}
	return resp.Header.Get("Location")
}

func TestAuthCodeLink(t *testing.T) {
	t.Parallel()
	srv, store := newServer(t, nil), newMemStore()
	m := newManager(t, delegatedOptions(srv, store))
	l, err := m.StartAuthCodeLink(alice)
	if err != nil {
		t.Fatal(err)
	}
	q := mustParse(t, l.URL).Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("login_hint") != alice || q.Get("state") == "" {
		t.Fatalf("authorization URL %s", l.URL)
	}
	back := authorize(t, l)

	// A URL from another request (state differs) is refused before the
	// code is spent: the right URL still works afterwards.
	forged := mustParse(t, back)
	fq := forged.Query()
	fq.Set("state", "other")
	forged.RawQuery = fq.Encode()
	if err := m.FinishAuthCodeLink(t.Context(), alice, l, forged.String()); err == nil {
		t.Fatal("state mismatch accepted")
	}
	if err := m.FinishAuthCodeLink(t.Context(), alice, l, back); err != nil {
		t.Fatal(err)
	}
	if tok := mustToken(t, m, alice); !srv.ValidFor(tok, alice) || store.token(alice) == "" {
		t.Fatal("link did not produce a working token")
	}
}

func TestAuthCodeLinkWrongVerifier(t *testing.T) {
	t.Parallel()
	srv, store := newServer(t, nil), newMemStore()
	m := newManager(t, delegatedOptions(srv, store))
	l, _ := m.StartAuthCodeLink(alice)
	back := authorize(t, l)
	l.verifier = oauth2.GenerateVerifier() // an attacker holding only the code
	err := m.FinishAuthCodeLink(t.Context(), alice, l, back)
	if err == nil || errors.Is(err, ErrTransient) || store.token(alice) != "" {
		t.Fatalf("wrong PKCE verifier: err=%v saved=%q", err, store.token(alice))
	}
}

func TestAuthCodeLinkWrongMailbox(t *testing.T) {
	t.Parallel()
	srv, store := newServer(t, nil), newMemStore()
	m := newManager(t, delegatedOptions(srv, store))
	srv.SetAuthorizeUser(bob) // the admin signs in with the wrong account
	l, _ := m.StartAuthCodeLink(alice)
	if err := m.FinishAuthCodeLink(t.Context(), alice, l, authorize(t, l)); !errors.Is(err, ErrWrongMailbox) {
		t.Fatalf("err = %v, want ErrWrongMailbox", err)
	}
	if store.token(alice) != "" {
		t.Fatal("token saved")
	}
}

// Without an ID token only Options.VerifyMailbox can vouch for the mailbox;
// without it no link is made.
func TestLinkWithoutIDToken(t *testing.T) {
	t.Parallel()
	srv := newServer(t, &fakeidp.Options{NoIDToken: true})
	tests := []struct {
		name   string
		verify func(context.Context, string, string) error
		as     string
		want   error // nil: linked
	}{
		{"no verifier", nil, alice, ErrUnverified},
		{"upstream accepts", upstream(srv).login, alice, nil},
		{"upstream refuses", upstream(srv).login, bob, ErrWrongMailbox},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newMemStore()
			o := delegatedOptions(srv, store)
			o.VerifyMailbox = tt.verify
			m := newManager(t, o)
			srv.SetAuthorizeUser(tt.as)
			l, _ := m.StartAuthCodeLink(alice)
			err := m.FinishAuthCodeLink(t.Context(), alice, l, authorize(t, l))
			if !errors.Is(err, tt.want) || (err == nil) != (store.token(alice) != "") {
				t.Fatalf("err=%v saved=%v, want %v", err, store.token(alice) != "", tt.want)
			}
		})
	}
}

// TestLinkClaimsAreHints: the ID token's claims never link a mailbox by
// themselves (docs/security.md, "nOAuth"). Every link is proven by one
// upstream login as the mailbox; an email claim naming another address
// refuses the link before any upstream login.
func TestLinkClaimsAreHints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		signIn   string // the account that approves
		claims   string // what the ID token says ("": the signed-in account)
		down     bool   // the upstream refuses every login
		want     error  // nil: linked
		upstream int    // upstream logins made
	}{
		{"owner", alice, "", false, nil, 1},
		{"claims name the mailbox, token opens another", bob, alice, false, ErrWrongMailbox, 1},
		{"claims name another mailbox", bob, "", false, ErrWrongMailbox, 0},
		{"claims name another mailbox the token opens", alice, bob, false, ErrWrongMailbox, 0},
		{"claims match, upstream login fails", alice, "", true, errors.New("any"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, store := newServer(t, nil), newMemStore()
			up := upstream(srv)
			up.down = tt.down
			o := delegatedOptions(srv, store)
			o.VerifyMailbox = up.login
			m := newManager(t, o)
			srv.SetAuthorizeUser(tt.signIn)
			srv.SetIDTokenMailbox(tt.claims)
			l, _ := m.StartAuthCodeLink(alice)
			err := m.FinishAuthCodeLink(t.Context(), alice, l, authorize(t, l))
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("link: %v", err)
			case tt.want != nil && err == nil:
				t.Fatal("link succeeded")
			case errors.Is(tt.want, ErrWrongMailbox) && !errors.Is(err, ErrWrongMailbox):
				t.Fatalf("err = %v, want ErrWrongMailbox", err)
			}
			if saved := store.token(alice) != ""; saved != (tt.want == nil) || store.token(bob) != "" {
				t.Fatalf("saved for alice=%v bob=%v", saved, store.token(bob) != "")
			}
			if n := up.loginCount(); n != tt.upstream {
				t.Fatalf("%d upstream logins, want %d", n, tt.upstream)
			}
		})
	}
}

// tenantA and tenantB are Entra ID tenant IDs.
const tenantA, tenantB = "72f988bf-86f1-41af-91ab-2d7cd011db47", "9188040d-6c67-4c5b-b112-36a304b66dad"

// TestLinkAllowedTenants: on tenant common the ID token's tid must be one
// of AllowedTenants, checked before the upstream login; without the list a
// Manager on common is not built.
func TestLinkAllowedTenants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		idp  fakeidp.Options
		want error // nil: linked
	}{
		{"allowed tenant", fakeidp.Options{TenantID: tenantA}, nil},
		{"allowed tenant in upper case", fakeidp.Options{TenantID: strings.ToUpper(tenantA)}, nil},
		{"other tenant", fakeidp.Options{TenantID: tenantB}, ErrTenant},
		{"no tid", fakeidp.Options{}, ErrTenant},
		{"no ID token", fakeidp.Options{NoIDToken: true, TenantID: tenantA}, ErrTenant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, store := newServer(t, &tt.idp), newMemStore()
			up := upstream(srv)
			o := delegatedOptions(srv, store)
			o.Tenant, o.AllowedTenants, o.VerifyMailbox = "common", []string{"  " + strings.ToUpper(tenantA)}, up.login
			m := newManager(t, o)
			l, _ := m.StartAuthCodeLink(alice)
			err := m.FinishAuthCodeLink(t.Context(), alice, l, authorize(t, l))
			if !errors.Is(err, tt.want) || (err == nil) != (store.token(alice) != "") {
				t.Fatalf("err=%v saved=%v, want %v", err, store.token(alice) != "", tt.want)
			}
			if want := map[bool]int{true: 1, false: 0}[tt.want == nil]; up.loginCount() != want {
				t.Fatalf("%d upstream logins, want %d", up.loginCount(), want)
			}
		})
	}
	for _, tenant := range []string{"", "common", "Organizations", "consumers"} {
		o := delegatedOptions(newServer(t, nil), newMemStore())
		o.Tenant = tenant
		if _, err := New(o); err == nil {
			t.Errorf("delegated flow on tenant %q without AllowedTenants accepted", tenant)
		}
	}
}

// TestVerifyMailboxClaims covers the ID token rules on their own: a sign-in
// name (preferred_username, upn) other than the mailbox goes on to the
// upstream login, as at Microsoft a UPN often differs from the mail address;
// an email claim naming another address refuses at once.
func TestVerifyMailboxClaims(t *testing.T) {
	t.Parallel()
	tests := []struct {
		claims   string
		want     error
		upstream int
	}{
		{`{"preferred_username":"alice@contoso.onmicrosoft.com"}`, nil, 1},
		{`{"upn":"alice.smith@contoso.com","email":"ALICE@contoso.com"}`, nil, 1},
		{`{"preferred_username":"alice@contoso.onmicrosoft.com","email":"bob@contoso.com"}`, ErrWrongMailbox, 0},
		{`{"preferred_username":"alice@contoso.com","email":"bob@contoso.com"}`, nil, 1},
		{`{}`, nil, 1},
	}
	srv := newServer(t, nil)
	for _, tt := range tests {
		calls := 0
		o := delegatedOptions(srv, newMemStore())
		o.VerifyMailbox = func(context.Context, string, string) error { calls++; return nil }
		m := newManager(t, o)
		tok := (&oauth2.Token{AccessToken: "at"}).WithExtra(map[string]any{"id_token": unsignedJWT(tt.claims)})
		if err := m.verifyMailbox(t.Context(), alice, tok); !errors.Is(err, tt.want) || calls != tt.upstream {
			t.Errorf("claims %s: err=%v upstream logins=%d, want %v and %d", tt.claims, err, calls, tt.want, tt.upstream)
		}
	}
}

// unsignedJWT wraps claims in an ID token with alg "none".
func unsignedJWT(claims string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none"}`)) + "." + enc.EncodeToString([]byte(claims)) + "."
}

func TestLinkUnsupported(t *testing.T) {
	srv := newServer(t, nil)
	o := delegatedOptions(srv, newMemStore())
	o.Provider = Google
	m := newManager(t, o)
	if _, err := m.StartDeviceLink(t.Context(), alice); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("google device flow: %v, want ErrUnsupported", err)
	}
	l, err := m.StartAuthCodeLink(alice)
	if err != nil {
		t.Fatal(err)
	}
	if q := mustParse(t, l.URL).Query(); q.Get("access_type") != "offline" || q.Get("prompt") != "consent" {
		t.Fatalf("google auth URL lacks offline access: %s", l.URL)
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// A provider blip while polling must not lose the admin's approval.
func TestDeviceLinkSurvivesTransientPollError(t *testing.T) {
	t.Parallel()
	srv, store := newServer(t, nil), newMemStore()
	m := newManager(t, delegatedOptions(srv, store))
	srv.FailNext(1, http.StatusInternalServerError) // the first poll
	dc, done := startDevice(t, t.Context(), m, srv)
	srv.ApproveDevice(dc.UserCode, alice)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if store.token(alice) == "" || srv.TokenRequests() != 2 {
		t.Fatalf("saved=%v requests=%d", store.token(alice) != "", srv.TokenRequests())
	}
}
