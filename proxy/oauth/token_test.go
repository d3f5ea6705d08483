package oauth

import (
	"context"
	"errors"
	"mailgate/internal/testclock"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRefreshRotationSurvivesRestart(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	m, store := linked(t, srv, alice)
	first := store.token(alice)
	tok := mustToken(t, m, alice)
	rotated := store.token(alice)
	if !srv.ValidFor(tok, alice) || rotated == first || rotated == "" || store.saveCount() != 2 {
		t.Fatalf("after refresh: valid=%v rotated=%v saves=%d", srv.ValidFor(tok, alice), rotated != first, store.saveCount())
	}
	// A new process on the same store, once the shared access token has
	// expired: the old refresh token is dead at the provider now, so this
	// works only because the rotated one was saved.
	o := delegatedOptions(srv, store)
	o.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	m2 := newManager(t, o)
	if tok2 := mustToken(t, m2, alice); !srv.ValidFor(tok2, alice) {
		t.Fatal("token after restart not valid")
	}
	if srv.Refreshes(alice) != 2 || store.relinkReason(alice) != "" {
		t.Fatalf("refreshes=%d relink=%q", srv.Refreshes(alice), store.relinkReason(alice))
	}
}

// A failing store must not lose a rotated refresh token: it is kept in
// memory and used for the next refresh.
func TestRotatedTokenKeptWhenStoreFails(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	m, store := linked(t, srv, alice)
	store.failAll = true
	tok := mustToken(t, m, alice)
	m.Invalidate(alice, tok)
	store.mu.Lock()
	store.failAll = false
	store.mu.Unlock()
	if tok2 := mustToken(t, m, alice); !srv.ValidFor(tok2, alice) {
		t.Fatal("second refresh failed")
	}
	if store.relinkReason(alice) != "" {
		t.Fatalf("relink marked: %s", store.relinkReason(alice))
	}
}

func TestInvalidGrantNeedsRelink(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	m, store := linked(t, srv, alice)
	srv.RevokeRefreshTokens(alice)
	_, err := m.Token(t.Context(), alice)
	if !errors.Is(err, ErrRelink) || errors.Is(err, ErrTransient) || !strings.Contains(err.Error(), "AADSTS70000") {
		t.Fatalf("err = %v, want ErrRelink with the provider's reason", err)
	}
	if r := store.relinkReason(alice); !strings.HasPrefix(r, "invalid_grant: AADSTS70000") {
		t.Fatalf("MarkRelink reason %q", r)
	}
	// Asking again does not hammer the provider with the dead token.
	if _, err := m.Token(t.Context(), alice); !errors.Is(err, ErrRelink) || srv.Refreshes(alice) != 1 {
		t.Fatalf("second Token: %v, refreshes=%d", err, srv.Refreshes(alice))
	}
	// Linking again (here: a new token in the store) heals the mailbox.
	store.SaveRefreshToken(msKey, alice, srv.IssueRefreshToken(alice))
	mustToken(t, m, alice)
}

func TestNotLinked(t *testing.T) {
	t.Parallel()
	srv, store := newServer(t, nil), newMemStore()
	m := newManager(t, delegatedOptions(srv, store))
	if _, err := m.Token(t.Context(), alice); !errors.Is(err, ErrRelink) {
		t.Fatalf("err = %v, want ErrRelink", err)
	}
	if store.relinkReason(alice) != "" || srv.TokenRequests() != 0 {
		t.Fatal("not-linked mailbox marked or sent to the provider")
	}
}

func TestTransientFailuresKeepToken(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusTooManyRequests} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, nil)
			m, store := linked(t, srv, alice)
			rt := store.token(alice)
			srv.FailNext(maxAttempts, status)
			if _, err := m.Token(t.Context(), alice); !errors.Is(err, ErrTransient) || errors.Is(err, ErrRelink) {
				t.Fatalf("err = %v, want ErrTransient", err)
			}
			if store.token(alice) != rt || store.relinkReason(alice) != "" {
				t.Fatal("refresh token touched by a transient failure")
			}
			if srv.TokenRequests() != maxAttempts {
				t.Fatalf("%d token requests, want %d tries", srv.TokenRequests(), maxAttempts)
			}
			mustToken(t, m, alice) // the provider is back
		})
	}
}

func TestRetryRecovers(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	m, _ := linked(t, srv, alice)
	srv.FailNext(maxAttempts-1, http.StatusServiceUnavailable)
	mustToken(t, m, alice)
	if srv.Refreshes(alice) != 1 {
		t.Fatalf("refreshes = %d", srv.Refreshes(alice))
	}
}

func TestTimeoutAndOutageAreTransient(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	store := newMemStore()
	store.SaveRefreshToken(msKey, alice, srv.IssueRefreshToken(alice))
	o := delegatedOptions(srv, store)
	o.HTTPClient = &http.Client{Timeout: 50 * time.Millisecond}
	m := newManager(t, o)
	rt := store.token(alice)

	srv.SetDelay(time.Minute) // the handler gives up when the client hangs up
	if _, err := m.Token(t.Context(), alice); !errors.Is(err, ErrTransient) {
		t.Fatalf("timeout: err = %v, want ErrTransient", err)
	}
	srv.SetDelay(0)
	if err := srv.SetDown(true); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Token(t.Context(), alice); !errors.Is(err, ErrTransient) {
		t.Fatalf("connection refused: err = %v, want ErrTransient", err)
	}
	if store.token(alice) != rt || store.relinkReason(alice) != "" {
		t.Fatal("refresh token touched")
	}
	if err := srv.SetDown(false); err != nil {
		t.Fatal(err)
	}
	mustToken(t, m, alice)
}

func TestConcurrentCallersShareOneRefresh(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	m, _ := linked(t, srv, alice)
	held, resume := srv.Pause()
	var wg sync.WaitGroup
	toks := make([]string, 100)
	errs := make([]error, 100)
	for i := range toks {
		wg.Go(func() { toks[i], errs[i] = m.Token(context.Background(), alice) })
	}
	<-held // the refresh is at the provider; latecomers join it or hit the cache
	resume()
	wg.Wait()
	for i := range toks {
		if errs[i] != nil || toks[i] != toks[0] {
			t.Fatalf("caller %d: %q %v", i, toks[i], errs[i])
		}
	}
	if n := srv.Refreshes(alice); n != 1 {
		t.Fatalf("refreshes = %d, want 1", n)
	}
}

// A provider stuck on one mailbox's refresh must not hold up another
// mailbox's cached token: no lock is held across HTTP.
func TestSlowRefreshDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	store := newMemStore()
	for _, mb := range []string{alice, bob} {
		store.SaveRefreshToken(msKey, mb, srv.IssueRefreshToken(mb))
	}
	m := newManager(t, delegatedOptions(srv, store))
	tb := mustToken(t, m, bob)
	resume, done := pausedToken(srv, m, alice)
	defer resume()
	if got := mustToken(t, m, bob); got != tb { // would hang if blocked
		t.Fatalf("bob's token changed")
	}
	resume()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A caller that gives up gets ErrTransient at once; the shared refresh
// goes on for the others.
func TestCallerCancelDoesNotFailFlight(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	m, _ := linked(t, srv, alice)
	held, resume := srv.Pause()
	defer resume()
	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() { _, err := m.Token(ctx, alice); first <- err }()
	<-held
	cancel()
	if err := <-first; !errors.Is(err, ErrTransient) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	resume()
	mustToken(t, m, alice)
	if srv.Refreshes(alice) != 1 {
		t.Fatalf("refreshes = %d, want 1 (the flight survived)", srv.Refreshes(alice))
	}
}

func TestInvalidateThenRefresh(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	m, _ := linked(t, srv, alice)
	t1 := mustToken(t, m, alice)
	m.Invalidate(alice, "some older token") // not the cached one: ignored
	if mustToken(t, m, alice) != t1 || srv.Refreshes(alice) != 1 {
		t.Fatal("stale Invalidate dropped the current token")
	}
	m.Invalidate("ALICE@contoso.com", t1)
	if t2 := mustToken(t, m, alice); t2 == t1 || !srv.ValidFor(t2, alice) || srv.Refreshes(alice) != 2 {
		t.Fatalf("after Invalidate: new=%v refreshes=%d", t2 != t1, srv.Refreshes(alice))
	}
}

func TestEarlyRefresh(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil) // tokens live 1 h
	store := newMemStore()
	store.SaveRefreshToken(msKey, alice, srv.IssueRefreshToken(alice))
	clock := testclock.New(time.Unix(1e9, 0))
	o := delegatedOptions(srv, store)
	o.Now = clock.Now
	m := newManager(t, o)
	t1 := mustToken(t, m, alice)
	clock.Add(time.Hour - earlyRefresh - time.Second)
	if mustToken(t, m, alice) != t1 {
		t.Fatal("refreshed too early")
	}
	clock.Add(2 * time.Second)
	if mustToken(t, m, alice) == t1 {
		t.Fatal("not refreshed before expiry")
	}
}

func BenchmarkTokenCached(b *testing.B) {
	srv := newServer(b, nil)
	m, _ := linked(b, srv, alice)
	mustToken(b, m, alice)
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.Token(ctx, alice); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := m.Token(ctx, alice); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// A refresh with the old token that fails while the admin links the
// mailbox again must not mark the fresh link for re-linking.
func TestRelinkDuringRefresh(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	m, store := linked(t, srv, alice)
	resume, done := pausedToken(srv, m, alice)
	srv.RevokeRefreshTokens(alice)
	store.SaveRefreshToken(msKey, alice, srv.IssueRefreshToken(alice))
	resume()
	if err := <-done; !errors.Is(err, ErrTransient) {
		t.Fatalf("err = %v, want ErrTransient", err)
	}
	if r := store.relinkReason(alice); r != "" {
		t.Fatalf("fresh link marked: %s", r)
	}
	mustToken(t, m, alice)
}

// After an unlink (the store forgets the refresh token) Forget makes the
// next Token fail with ErrRelink instead of serving the cached access token.
func TestForgetAfterUnlink(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	m, store := linked(t, srv, alice)
	mustToken(t, m, alice)
	store.mu.Lock()
	delete(store.tokens, msKey+"/"+alice)
	store.mu.Unlock()
	if tok, err := m.Token(t.Context(), alice); err != nil || tok == "" {
		t.Fatalf("before Forget the cached token is served: %q, %v", tok, err)
	}
	m.Forget(strings.ToUpper(alice))
	if _, err := m.Token(t.Context(), alice); !errors.Is(err, ErrRelink) {
		t.Fatalf("Token after Forget: %v, want ErrRelink", err)
	}
}

// TestCanonical: cache and store keys fold as the store does, ASCII
// letters only.
func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		" Ann@Example.COM ": "ann@example.com",
		"\u212Aim@x.org":    "\u212Aim@x.org", // a Kelvin sign stays: it is not kim@x.org
		"ÄNN@x.org":         "Änn@x.org",
		"":                  "",
		" not-a-mailbox ":   "not-a-mailbox",
	} {
		if got := canonical(in); got != want {
			t.Errorf("canonical(%q) = %q, want %q", in, got, want)
		}
	}
}

// A refresh that is at the provider while an admin unlinks the mailbox
// must not store the rotated refresh token: that would link the mailbox
// again behind the admin's back, and its logins would go on working.
func TestUnlinkDuringRefresh(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	m, store := linked(t, srv, alice)
	resume, done := pausedToken(srv, m, alice)
	store.mu.Lock() // account unlink: the store forgets the grant, then Forget
	delete(store.tokens, msKey+"/"+alice)
	delete(store.access, msKey+"/"+alice)
	store.mu.Unlock()
	m.Forget(alice)
	resume()
	if err := <-done; !errors.Is(err, ErrRelink) {
		t.Fatalf("refresh across an unlink: err = %v, want ErrRelink", err)
	}
	if rt := store.token(alice); rt != "" {
		t.Fatal("the refresh stored a refresh token for an unlinked mailbox")
	}
	if _, err := m.Token(t.Context(), alice); !errors.Is(err, ErrRelink) {
		t.Fatalf("Token after the unlink: %v, want ErrRelink", err)
	}
}

// A refresh with the old grant that works while the mailbox is linked
// again must leave the new link in the store, not the old grant's rotated
// refresh token (a link again to add a scope, POP3 say, would be undone).
func TestRelinkDuringSuccessfulRefresh(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	m, store := linked(t, srv, alice)
	resume, done := pausedToken(srv, m, alice)
	fresh := srv.IssueRefreshToken(alice)
	store.SaveRefreshToken(msKey, alice, fresh)
	resume()
	if err := <-done; err != nil {
		t.Fatalf("the login waiting for the refresh: %v", err)
	}
	if store.token(alice) != fresh {
		t.Fatal("the old grant's rotated refresh token replaced the new link")
	}
	if tok := mustToken(t, m, alice); !srv.ValidFor(tok, alice) || srv.Refreshes(alice) != 2 {
		t.Fatalf("next login: valid=%v refreshes=%d, want a refresh with the new link", srv.ValidFor(tok, alice), srv.Refreshes(alice))
	}
}
