package oauth

import (
	"context"
	"errors"
	"testing"
	"time"

	"mailgate/store"
)

// access is a shared access token in memStore.
type access struct {
	token  string
	expiry time.Time
}

// The shared-token half of memStore: one process, so LockRefresh is a
// no-op as with bbolt; the PostgreSQL tests in shared_test.go use the real
// store.

func (s *memStore) LoadToken(provider, mailbox string) (store.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.access[provider+"/"+mailbox]
	return store.Token{Refresh: s.tokens[provider+"/"+mailbox], Access: a.token, AccessExpiry: a.expiry}, nil
}

func (s *memStore) SaveToken(provider, mailbox string, t store.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAll {
		return errors.New("disk full")
	}
	s.saves++
	s.tokens[provider+"/"+mailbox] = t.Refresh
	s.access[provider+"/"+mailbox] = access{t.Access, t.AccessExpiry}
	delete(s.relink, provider+"/"+mailbox)
	return nil
}

func (s *memStore) ForgetAccess(provider, mailbox, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.access[provider+"/"+mailbox].token == token {
		delete(s.access, provider+"/"+mailbox)
	}
	return nil
}

func (s *memStore) LockRefresh(context.Context, string, string) (func(), error) {
	return func() {}, nil
}

func (s *memStore) setFail(fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failAll = fail
}

// A flight that read the shared access token before a login's Invalidate
// of that token must not cache it again: the login's retry would get the
// refused token a second time and fail (seen with two daemons and 50
// logins racing after an expiry).
func TestShareSkipsRefused(t *testing.T) {
	srv := newServer(t, nil)
	m, _ := linked(t, srv, "ann@example.com")
	key := m.key("ann@example.com")
	stale := store.Token{Refresh: "rt", Access: "refused-token", AccessExpiry: time.Now().Add(time.Hour)}
	m.Invalidate("ann@example.com", stale.Access)
	if tok, ok := m.share(key, stale); ok || tok == m.cached(key) {
		t.Fatalf("share of the refused token: ok %v, cached %q", ok, m.cached(key))
	}
	fresh := store.Token{Refresh: "rt", Access: "fresh-token", AccessExpiry: time.Now().Add(time.Hour)}
	if tok, ok := m.share(key, fresh); !ok || m.cached(key) != tok {
		t.Fatalf("share of a fresh token: ok %v, cached %q", ok, m.cached(key))
	}
}

func TestShareMargin(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name string
		tok  store.Token
		want time.Duration
	}{
		{"an hour's token", store.Token{Saved: now, AccessExpiry: now.Add(time.Hour)}, earlyRefresh},
		{"16 s token", store.Token{Saved: now, AccessExpiry: now.Add(16 * time.Second)}, 8 * time.Second},
		{"save time unknown", store.Token{AccessExpiry: now.Add(16 * time.Second)}, earlyRefresh},
	} {
		if got := shareMargin(c.tok); got != c.want {
			t.Errorf("%s: shareMargin = %v, want %v", c.name, got, c.want)
		}
	}
}
