package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
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

// Without an ID token only Options.VerifyMailbox can vouch for the mailbox.
func TestLinkWithoutIDToken(t *testing.T) {
	t.Parallel()
	srv := newServer(t, &fakeidp.Options{NoIDToken: true})
	upstream := func(_ context.Context, mailbox, token string) error {
		if !srv.ValidFor(token, mailbox) {
			return ErrWrongMailbox
		}
		return nil
	}
	tests := []struct {
		name   string
		verify func(context.Context, string, string) error
		as     string
		ok     bool
	}{
		{"no verifier", nil, alice, false},
		{"upstream accepts", upstream, alice, true},
		{"upstream refuses", upstream, bob, false},
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
			if (err == nil) != tt.ok || (store.token(alice) != "") != tt.ok {
				t.Fatalf("err=%v saved=%v, want ok=%v", err, store.token(alice) != "", tt.ok)
			}
			if !tt.ok && !errors.Is(err, ErrWrongMailbox) {
				t.Fatalf("err = %v, want ErrWrongMailbox", err)
			}
		})
	}
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
