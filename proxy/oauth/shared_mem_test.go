package oauth

import (
	"context"
	"errors"
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
