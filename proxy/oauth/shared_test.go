package oauth

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"mailgate/internal/fakeidp"
	"mailgate/internal/pgtest"
	"mailgate/internal/testclock"
	"mailgate/store"
)

// Several instances on one store (issue 15): real stores, bbolt for one
// instance and PostgreSQL for two, and fakeidp rotating refresh tokens on
// every use, so that a second refresh with the same token would be refused
// and mark the mailbox for relinking.

// instances opens n stores (n > 1 only with dsn) on one database with one
// key file; reopen closes and opens them again, as a restart of every
// instance does.
type instances struct {
	t      *testing.T
	dsn    string
	dir    string
	stores []*store.Store
}

func openInstances(t *testing.T, dsn string, n int) *instances {
	t.Helper()
	in := &instances{t: t, dsn: dsn, dir: t.TempDir()}
	in.open(n)
	t.Cleanup(in.close)
	return in
}

func (in *instances) open(n int) {
	in.t.Helper()
	for range n {
		o := &store.Options{Path: filepath.Join(in.dir, "mailgate.db"),
			KeyFile: filepath.Join(in.dir, "mailgate.key")}
		if in.dsn != "" {
			o.Driver, o.Path, o.DSN = store.DriverPostgres, "", in.dsn
		}
		s, err := store.Open(o)
		if err != nil {
			in.t.Fatal(err)
		}
		in.stores = append(in.stores, s)
	}
}

func (in *instances) close() {
	for _, s := range in.stores {
		if err := s.Close(); err != nil {
			in.t.Errorf("close store: %v", err)
		}
	}
	in.stores = nil
}

func (in *instances) reopen() {
	n := len(in.stores)
	in.close()
	in.open(n)
}

// managers returns a Manager per store, all on one clock.
func (in *instances) managers(srv *fakeidp.Server, clock *testclock.Clock) []*Manager {
	var ms []*Manager
	for _, s := range in.stores {
		o := delegatedOptions(srv, s)
		o.Now = clock.Now
		ms = append(ms, newManager(in.t, o))
	}
	return ms
}

// burst asks for alice's token n times at once, spread over ms, and
// returns the distinct tokens handed out.
func burst(t *testing.T, ms []*Manager, n int) map[string]bool {
	t.Helper()
	var (
		mu     sync.Mutex
		tokens = map[string]bool{}
		wg     sync.WaitGroup
	)
	for i := range n {
		wg.Go(func() {
			tok, err := ms[i%len(ms)].Token(t.Context(), alice)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("Token %d: %v", i, err)
			}
			tokens[tok] = true
		})
	}
	wg.Wait()
	return tokens
}

func TestSharedPostgres(t *testing.T) {
	_, cluster := pgtest.Start(t)
	t.Run("OneRefreshForBothInstances", func(t *testing.T) {
		t.Parallel()
		testOneRefresh(t, openInstances(t, cluster.NewDatabase(t), 2))
	})
	t.Run("FreshSharedTokenNoRefresh", func(t *testing.T) {
		t.Parallel()
		testFreshShared(t, openInstances(t, cluster.NewDatabase(t), 2))
	})
	t.Run("InvalidateForgetsShared", func(t *testing.T) {
		t.Parallel()
		testInvalidateShared(t, openInstances(t, cluster.NewDatabase(t), 2))
	})
	t.Run("LockWaitBoundedByLogin", func(t *testing.T) {
		t.Parallel()
		testLockWait(t, openInstances(t, cluster.NewDatabase(t), 2))
	})
}

func TestSharedBolt(t *testing.T) {
	t.Parallel()
	testOneRefresh(t, openInstances(t, "", 1))
}

// testOneRefresh: after the access token expired, 50 concurrent Token
// calls over every instance make exactly one refresh; the rotated refresh
// token is in the store (the one it replaced is refused by the provider)
// and works after every store is reopened.
func testOneRefresh(t *testing.T, in *instances) {
	srv := newServer(t, nil)
	first := srv.IssueRefreshToken(alice)
	if err := in.stores[0].SaveRefreshToken(msKey, alice, first); err != nil {
		t.Fatal(err)
	}
	clock := testclock.New(time.Now())
	ms := in.managers(srv, clock)
	burst(t, ms, 50)
	clock.Add(2 * time.Hour) // every cached and shared access token expired
	before := srv.Refreshes(alice)
	tokens := burst(t, ms, 50)
	if got := srv.Refreshes(alice) - before; got != 1 || len(tokens) != 1 {
		t.Fatalf("%d refreshes and %d distinct tokens for 50 calls over %d instances, want 1 and 1",
			got, len(tokens), len(ms))
	}
	for tok := range tokens {
		if !srv.ValidFor(tok, alice) {
			t.Fatal("token not valid at the provider")
		}
	}
	if _, err := refreshWith(srv, first); err == nil {
		t.Fatal("fakeidp accepted the first refresh token again: the test proves nothing")
	}
	in.reopen()
	clock.Add(2 * time.Hour)
	ms = in.managers(srv, clock)
	if tok := mustToken(t, ms[len(ms)-1], alice); !srv.ValidFor(tok, alice) {
		t.Fatal("token after reopening not valid")
	}
	if a := accountOf(t, in.stores[0], alice); a.NeedsRelink != "" {
		t.Fatalf("mailbox marked for relinking: %q", a.NeedsRelink)
	}
}

// testFreshShared: an instance that finds a live access token in the store
// uses it and makes no refresh.
func testFreshShared(t *testing.T, in *instances) {
	srv := newServer(t, nil)
	in.stores[0].SaveRefreshToken(msKey, alice, srv.IssueRefreshToken(alice))
	clock := testclock.New(time.Now())
	ms := in.managers(srv, clock)
	tok := mustToken(t, ms[0], alice)
	before := srv.Refreshes(alice)
	if tok2 := mustToken(t, ms[1], alice); tok2 != tok || srv.Refreshes(alice) != before {
		t.Fatalf("second instance: same token %v, refreshes %d -> %d", tok2 == tok, before, srv.Refreshes(alice))
	}
}

// testInvalidateShared: after the upstream refused the access token on one
// instance, no instance takes it from the store again: the next Token
// refreshes once, and the other instance, refused the same token, takes
// the new one without a refresh of its own.
func testInvalidateShared(t *testing.T, in *instances) {
	srv := newServer(t, nil)
	in.stores[0].SaveRefreshToken(msKey, alice, srv.IssueRefreshToken(alice))
	clock := testclock.New(time.Now())
	ms := in.managers(srv, clock)
	old := mustToken(t, ms[0], alice)
	mustToken(t, ms[1], alice)
	before := srv.Refreshes(alice)
	ms[0].Invalidate(alice, old)
	if t0, _ := in.stores[1].LoadToken(msKey, alice); t0.Access != "" {
		t.Fatal("shared access token kept after Invalidate")
	}
	cold := in.managers(srv, clock)[1] // a cache that never saw the token
	fresh := mustToken(t, cold, alice)
	ms[1].Invalidate(alice, old)
	if got := mustToken(t, ms[1], alice); fresh == old || got != fresh || srv.Refreshes(alice)-before != 1 {
		t.Fatalf("after Invalidate: new token %v, shared %v, %d refreshes (want 1)",
			fresh != old, got == fresh, srv.Refreshes(alice)-before)
	}
}

// testLockWait: a login waiting for another instance's refresh gives up
// at its own deadline with a "try later", without refreshing; the
// instance holding the lock is then followed, not raced.
func testLockWait(t *testing.T, in *instances) {
	srv := newServer(t, nil)
	in.stores[0].SaveRefreshToken(msKey, alice, srv.IssueRefreshToken(alice))
	clock := testclock.New(time.Now())
	ms := in.managers(srv, clock)
	unlock, err := in.stores[0].LockRefresh(t.Context(), msKey, alice)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := ms[1].Token(ctx, alice); !errors.Is(err, ErrTransient) || srv.Refreshes(alice) != 0 {
		t.Fatalf("Token while another instance refreshes: %v, %d refreshes; want ErrTransient and none",
			err, srv.Refreshes(alice))
	}
	unlock()
	if tok := mustToken(t, ms[1], alice); !srv.ValidFor(tok, alice) || srv.Refreshes(alice) != 1 {
		t.Fatalf("after unlock: %d refreshes", srv.Refreshes(alice))
	}
}

// refreshWith redeems rt at srv directly.
func refreshWith(srv *fakeidp.Server, rt string) (*oauth2.Token, error) {
	cfg := &oauth2.Config{ClientID: "cid", Endpoint: oauth2.Endpoint{TokenURL: srv.TokenURL()}}
	return cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: rt}).Token()
}

// accountOf returns the store's account row of mailbox.
func accountOf(t *testing.T, s *store.Store, mailbox string) store.Account {
	t.Helper()
	as, err := s.Accounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.Mailbox == mailbox {
			return a
		}
	}
	t.Fatalf("no account %s", mailbox)
	return store.Account{}
}

// TestPendingSavedAgain: a rotated refresh token the store refused is saved
// again (after saveRetry, started by a login served from the cache), so
// that another instance, or this one after a restart, can refresh with it.
func TestPendingSavedAgain(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	st := newMemStore()
	st.SaveRefreshToken(msKey, alice, srv.IssueRefreshToken(alice))
	clock := testclock.New(time.Now())
	o := delegatedOptions(srv, st)
	o.Now = clock.Now
	m := newManager(t, o)
	st.setFail(true)
	mustToken(t, m, alice)
	rotated := m.entry(alice).pending.Refresh
	if rotated == "" || st.token(alice) == rotated {
		t.Fatalf("rotated token kept in memory: %v", rotated != "")
	}
	st.setFail(false)
	clock.Add(saveRetry)
	mustToken(t, m, alice) // from the cache; starts the save
	for deadline := time.Now().Add(10 * time.Second); st.token(alice) != rotated; {
		if time.Now().After(deadline) { // a hang guard, not a timing assertion
			t.Fatal("rotated refresh token never saved again")
		}
		time.Sleep(5 * time.Millisecond)
	}
	other := delegatedOptions(srv, st)
	other.Now = func() time.Time { return clock.Now().Add(2 * time.Hour) }
	if tok := mustToken(t, newManager(t, other), alice); !srv.ValidFor(tok, alice) || st.relinkReason(alice) != "" {
		t.Fatalf("another instance with the saved token: relink %q", st.relinkReason(alice))
	}
}

// A login that joined a flight started by a login with an earlier deadline
// is not failed by that deadline: when the flight gives up waiting for the
// refresh lock, the later login asks again and gets the token once the
// lock is free.
func TestLockWaitJoinedLater(t *testing.T) {
	t.Parallel()
	in := openInstances(t, "", 1)
	srv := newServer(t, nil)
	in.stores[0].SaveRefreshToken(msKey, alice, srv.IssueRefreshToken(alice))
	m := in.managers(srv, testclock.New(time.Now()))[0]
	unlock, err := in.stores[0].LockRefresh(t.Context(), msKey, alice)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	first := make(chan error, 1)
	go func() { _, err := m.Token(short, alice); first <- err }()
	// Let the short login start the flight, so that the long one joins
	// it. (Should the long one start it after all, the test passes
	// without testing anything, never fails wrongly.)
	time.Sleep(50 * time.Millisecond)
	long, cancelLong := context.WithTimeout(t.Context(), time.Minute) // hang guard
	defer cancelLong()
	second := make(chan error, 1)
	go func() {
		tok, err := m.Token(long, alice)
		if err == nil && !srv.ValidFor(tok, alice) {
			err = errors.New("token not valid at the provider")
		}
		second <- err
	}()
	if err := <-first; !errors.Is(err, ErrTransient) {
		t.Fatalf("the login with the short deadline: %v, want ErrTransient", err)
	}
	unlock()
	if err := <-second; err != nil {
		t.Fatalf("the login with the later deadline: %v", err)
	}
}

// TestLockWaitLaterThan: a login asks again after a flight gave up waiting
// for the refresh lock only if it would have waited longer, so that a login
// whose own deadline ended with the flight's does not start a flight that
// fails at once for the logins that join it (TestLockWaitJoinedLater
// failed that way once in a -race run of the whole suite).
func TestLockWaitLaterThan(t *testing.T) {
	t0 := time.Now()
	for _, tc := range []struct {
		until, deadline time.Time
		want            bool
	}{
		{t0, t0.Add(time.Second), true},
		{t0, time.Time{}, true}, // no deadline of its own
		{t0, t0, false},         // the login that started the flight
		{t0, t0.Add(-time.Millisecond), false},
		{time.Time{}, t0.Add(time.Hour), false}, // the flight's own timeout ended it
	} {
		e := &lockWaitError{until: tc.until, err: context.DeadlineExceeded}
		if got := e.laterThan(tc.deadline); got != tc.want {
			t.Errorf("until %v, deadline %v: laterThan = %v, want %v", tc.until, tc.deadline, got, tc.want)
		}
	}
}
