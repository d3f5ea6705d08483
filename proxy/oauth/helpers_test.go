package oauth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"mailgate/internal/fakeidp"
)

// memStore is an in-memory TokenStore.
type memStore struct {
	mu      sync.Mutex
	tokens  map[string]string
	relink  map[string]string
	saves   int
	failAll bool              // SaveRefreshToken and SaveToken fail
	access  map[string]access // shared access tokens; see shared_mem_test.go
}

var _ TokenStore = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{tokens: map[string]string{}, relink: map[string]string{}, access: map[string]access{}}
}

func (s *memStore) LoadRefreshToken(provider, mailbox string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens[provider+"/"+mailbox], nil
}

func (s *memStore) SaveRefreshToken(provider, mailbox, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAll {
		return errors.New("disk full")
	}
	s.saves++
	s.tokens[provider+"/"+mailbox] = token
	delete(s.relink, provider+"/"+mailbox)
	delete(s.access, provider+"/"+mailbox)
	return nil
}

func (s *memStore) MarkRelink(provider, mailbox, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.relink[provider+"/"+mailbox] = reason
	return nil
}

// msKey is the store key of the Microsoft managers in these tests.
const msKey = string(Microsoft)

func (s *memStore) token(mailbox string) string {
	t, _ := s.LoadRefreshToken(msKey, mailbox)
	return t
}

func (s *memStore) relinkReason(mailbox string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.relink[msKey+"/"+mailbox]
}

func (s *memStore) saveCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saves
}

func newServer(t testing.TB, opts *fakeidp.Options) *fakeidp.Server {
	t.Helper()
	srv, err := fakeidp.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// delegatedOptions points a Microsoft delegated Manager at srv, with the
// upstream login of upstream(srv).
func delegatedOptions(srv *fakeidp.Server, store TokenStore) *Options {
	return &Options{Provider: Microsoft, Tenant: "contoso", ClientID: "cid",
		TokenURL: srv.TokenURL(), DeviceAuthURL: srv.DeviceAuthURL(), AuthURL: srv.AuthURL(),
		RedirectURL: "http://localhost:8400/cb", Store: store, VerifyMailbox: upstream(srv).login}
}

// fakeUpstream plays the upstream login that VerifyMailbox makes: it accepts
// a token that srv issued for the mailbox, and counts the logins.
type fakeUpstream struct {
	srv    *fakeidp.Server
	mu     sync.Mutex
	logins []string // mailboxes, in order
	down   bool     // refuse every login, as an upstream that is down
}

func upstream(srv *fakeidp.Server) *fakeUpstream { return &fakeUpstream{srv: srv} }

func (u *fakeUpstream) login(_ context.Context, mailbox, token string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.logins = append(u.logins, mailbox)
	switch {
	case u.down:
		return errors.New("upstream: connection refused")
	case !u.srv.ValidFor(token, mailbox):
		return ErrWrongMailbox
	}
	return nil
}

func (u *fakeUpstream) loginCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.logins)
}

func newManager(t testing.TB, opts *Options) *Manager {
	t.Helper()
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	m.backoff = time.Millisecond // keep retry tests quick
	return m
}

// linked returns a Manager whose store holds a refresh token for mailbox.
func linked(t testing.TB, srv *fakeidp.Server, mailbox string) (*Manager, *memStore) {
	t.Helper()
	store := newMemStore()
	store.SaveRefreshToken(msKey, mailbox, srv.IssueRefreshToken(mailbox))
	return newManager(t, delegatedOptions(srv, store)), store
}

func mustToken(t testing.TB, m *Manager, mailbox string) string {
	t.Helper()
	tok, err := m.Token(context.Background(), mailbox)
	if err != nil {
		t.Fatalf("Token(%s): %v", mailbox, err)
	}
	return tok
}

// pausedToken starts m.Token for mailbox and returns once its refresh is
// at srv and held there: resume lets it go on, done gets Token's error.
func pausedToken(srv *fakeidp.Server, m *Manager, mailbox string) (resume func(), done <-chan error) {
	held, resume := srv.Pause()
	errs := make(chan error, 1)
	go func() { _, err := m.Token(context.Background(), mailbox); errs <- err }()
	<-held
	return resume, errs
}
