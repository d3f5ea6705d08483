package oauth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"mailgate/store"
)

// LinkState makes memStore a LinkStateReader, as cmd's store is.
func (s *memStore) LinkState(provider, mailbox string) (bool, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, linked := s.tokens[provider+"/"+mailbox]
	return linked, s.relink[provider+"/"+mailbox], nil
}

// plainStore hides LinkState: a TokenStore without the add-on.
type plainStore struct{ TokenStore }

// linkEvents records OnLinkState calls.
type linkEvents struct {
	mu  sync.Mutex
	got []string
}

func (e *linkEvents) on(mailbox, state, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, mailbox+" "+state)
}

func (e *linkEvents) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	got := e.got
	e.got = nil
	return got
}

func (e *linkEvents) expect(t *testing.T, step string, want ...string) {
	t.Helper()
	if got := e.take(); !slices.Equal(got, want) {
		t.Fatalf("%s: OnLinkState got %q, want %q", step, got, want)
	}
}

func hooked(t *testing.T, opts *Options, ev *linkEvents) *Manager {
	opts.OnLinkState = ev.on
	return newManager(t, opts)
}

// failLogins asks for a token n times at once, as n logins would.
func failLogins(t *testing.T, m *Manager, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := m.Token(t.Context(), alice); !errors.Is(err, ErrRelink) {
				t.Errorf("Token: %v, want ErrRelink", err)
			}
		})
	}
	wg.Wait()
}

// TestLinkStateOncePerChange: a dead grant is told once however many
// logins hit it, and not again by a restarted manager; a re-link tells the
// recovery once; linking a healthy mailbox again tells nothing.
func TestLinkStateOncePerChange(t *testing.T) {
	srv := newServer(t, nil)
	store := newMemStore()
	store.SaveRefreshToken(msKey, alice, srv.IssueRefreshToken(alice))
	var ev linkEvents
	m := hooked(t, delegatedOptions(srv, store), &ev)
	srv.RevokeRefreshTokens(alice)
	failLogins(t, m, 20)
	failLogins(t, m, 5)
	ev.expect(t, "20 logins on a dead grant", alice+" "+StateNeedsRelink)

	restarted := hooked(t, delegatedOptions(srv, store), &ev)
	failLogins(t, restarted, 3)
	ev.expect(t, "after a restart")

	link := func() {
		t.Helper()
		tok := &oauth2.Token{AccessToken: srv.MintAccessToken(alice), RefreshToken: srv.IssueRefreshToken(alice)}
		if err := restarted.LinkToken(context.Background(), alice, tok); err != nil {
			t.Fatal(err)
		}
	}
	link()
	ev.expect(t, "re-link", alice+" "+StateLinked)
	mustToken(t, restarted, alice)
	link()
	ev.expect(t, "link of a healthy mailbox")
}

// TestLinkStateFirstLink: a first link is a change too.
func TestLinkStateFirstLink(t *testing.T) {
	srv := newServer(t, nil)
	var ev linkEvents
	m := hooked(t, delegatedOptions(srv, newMemStore()), &ev)
	tok := &oauth2.Token{AccessToken: srv.MintAccessToken(bob), RefreshToken: srv.IssueRefreshToken(bob)}
	if err := m.LinkToken(context.Background(), bob, tok); err != nil {
		t.Fatal(err)
	}
	ev.expect(t, "first link", bob+" "+StateLinked)
}

// TestLinkStateRecoveredByRefresh: a mailbox marked before a restart whose
// grant the provider accepts again recovers at the next refresh.
func TestLinkStateRecoveredByRefresh(t *testing.T) {
	srv := newServer(t, nil)
	store := newMemStore()
	store.SaveRefreshToken(msKey, alice, srv.IssueRefreshToken(alice))
	store.MarkRelink(msKey, alice, "interaction_required")
	var ev linkEvents
	m := hooked(t, delegatedOptions(srv, store), &ev)
	mustToken(t, m, alice)
	ev.expect(t, "refresh after needs_relink", alice+" "+StateLinked)
	m.Invalidate(alice, mustToken(t, m, alice))
	mustToken(t, m, alice)
	ev.expect(t, "second refresh")
}

// TestLinkStateWithoutReader: without LinkStateReader each dead token is
// told once per process, and transient failures never.
func TestLinkStateWithoutReader(t *testing.T) {
	srv := newServer(t, nil)
	store := newMemStore()
	store.SaveRefreshToken(msKey, alice, srv.IssueRefreshToken(alice))
	var ev linkEvents
	m := hooked(t, delegatedOptions(srv, plainStore{store}), &ev)
	srv.FailNext(maxAttempts, 503)
	if _, err := m.Token(t.Context(), alice); !errors.Is(err, ErrTransient) {
		t.Fatalf("Token: %v, want ErrTransient", err)
	}
	ev.expect(t, "provider down")
	srv.RevokeRefreshTokens(alice)
	failLogins(t, m, 10)
	ev.expect(t, "dead grant", fmt.Sprint(alice, " ", StateNeedsRelink))
}

// relinkRaceStore is a real (bbolt) store that runs a hook just before
// MarkRelink, and signals when LockRefresh is called after the hook began:
// the hook's link then waits for the lock the refresh holds.
type relinkRaceStore struct {
	*store.Store
	beforeMark func()
	linking    atomic.Bool
	atLock     chan struct{}
}

func (s *relinkRaceStore) MarkRelink(provider, mailbox, reason string) error {
	if s.beforeMark != nil {
		s.beforeMark()
	}
	return s.Store.MarkRelink(provider, mailbox, reason)
}

func (s *relinkRaceStore) LockRefresh(ctx context.Context, provider, mailbox string) (func(), error) {
	if s.linking.Load() {
		close(s.atLock)
	}
	return s.Store.LockRefresh(ctx, provider, mailbox)
}

// TestLinkStateRelinkDuringRefresh: a re-link that lands while a refresh of
// the old, dead token is between the provider's refusal and MarkRelink
// must not be marked dead. The link waits for the refresh lock, so the
// changes are told in the order they happen (needs_relink, then linked)
// and the store ends linked. Before, the link saved its token unlocked,
// told nothing (the store still looked healthy) and MarkRelink then marked
// the new link: a needs_relink webhook and mail right after the user
// signed in again, and the gauge wrong until the next refresh.
func TestLinkStateRelinkDuringRefresh(t *testing.T) {
	srv := newServer(t, nil)
	in := openInstances(t, "", 1)
	st := &relinkRaceStore{Store: in.stores[0], atLock: make(chan struct{})}
	if err := st.SaveRefreshToken(msKey, alice, srv.IssueRefreshToken(alice)); err != nil {
		t.Fatal(err)
	}
	var ev linkEvents
	m := hooked(t, delegatedOptions(srv, st), &ev)
	srv.RevokeRefreshTokens(alice)

	linkDone := make(chan error, 1)
	st.beforeMark = func() {
		st.beforeMark = nil // once; the refresh runs it with no link under way
		st.linking.Store(true)
		tok := &oauth2.Token{AccessToken: srv.MintAccessToken(alice), RefreshToken: srv.IssueRefreshToken(alice)}
		go func() { linkDone <- m.LinkToken(context.Background(), alice, tok) }()
		select {
		case <-st.atLock: // the link waits for the refresh: go on marking
		case err := <-linkDone: // the link went through unlocked
			linkDone <- err
		case <-time.After(10 * time.Second):
			t.Error("the link neither finished nor took the refresh lock")
		}
	}
	if _, err := m.Token(t.Context(), alice); !errors.Is(err, ErrRelink) {
		t.Fatalf("Token: %v, want ErrRelink", err)
	}
	if err := <-linkDone; err != nil {
		t.Fatalf("LinkToken: %v", err)
	}
	ev.expect(t, "refresh refused, then re-link", alice+" "+StateNeedsRelink, alice+" "+StateLinked)
	if linked, relink, err := st.LinkState(msKey, alice); err != nil || !linked || relink != "" {
		t.Fatalf("after the re-link: LinkState = %v, %q, %v; want linked and fine", linked, relink, err)
	}
}
