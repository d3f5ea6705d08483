package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"mailgate/internal/pgtest"
	"mailgate/internal/testclock"
)

// The conformance suite: the same test functions run against bbolt and a
// real PostgreSQL (internal/pgtest). TestConformance/postgres also runs
// the cases that need two instances on one database (conformance_pg_test.go).

// env opens stores of one backend.
type env struct {
	driver  string
	cluster *pgtest.Cluster // postgres only
}

// fresh returns options for a new, empty database with its own key file
// and fake clock.
func (e *env) fresh(t *testing.T) (*Options, *testclock.Clock) {
	t.Helper()
	o, c := testOptions(t)
	if e.driver == DriverPostgres {
		o.Driver, o.Path, o.DSN = DriverPostgres, "", e.cluster.NewDatabase(t)
	}
	return o, c
}

// open opens a store from o (as another instance would, when o is shared).
func (e *env) open(t *testing.T, o *Options) *Store {
	t.Helper()
	return openT(t, o)
}

type conformanceCase struct {
	name string
	fn   func(t *testing.T, e *env)
}

var conformance = []conformanceCase{
	{"CreateVerify", testCreateVerify},
	{"ListRevoke", testListRevoke},
	{"RevokeAll", testRevokeAll},
	{"Expiry", testExpiry},
	{"Limits", testLimits},
	{"LastUsedFlush", testLastUsedFlush},
	{"LinkUnlink", testLinkUnlink},
	{"SharedAccess", testSharedAccess},
	{"MarkRelink", testMarkRelink},
	{"MailboxesAccounts", testMailboxesAccounts},
	{"Concurrency", testConcurrency},
	{"LockRefresh", testLockRefresh},
	{"KeyMismatch", testKeyMismatch},
	{"KeyFileNotCreatedOverData", testKeyNotCreated},
	{"Reopen", testReopen},
}

func TestConformance(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) {
		runCases(t, &env{driver: DriverBolt}, conformance)
	})
	t.Run("postgres", func(t *testing.T) {
		_, cl := pgtest.Start(t)
		e := &env{driver: DriverPostgres, cluster: cl}
		runCases(t, e, conformance)
		runCases(t, e, conformancePG)
	})
}

func runCases(t *testing.T, e *env, cases []conformanceCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, e) })
	}
}

func testCreateVerify(t *testing.T, e *env) {
	o, _ := e.fresh(t)
	s := e.open(t, o)
	p, secret := create(t, s, " Alice@Example.COM ", "phone", nil, time.Time{})
	imapOnly, imapSecret := create(t, s, "alice@example.com", "laptop", []string{ScopeIMAP}, time.Time{})
	for _, scope := range []string{ScopeIMAP, ScopePOP3, ScopeSMTP} {
		got, err := s.Verify("ALICE@example.com", groups(secret), scope, "192.0.2.1")
		if err != nil || got.ID != p.ID || got.Mailbox != "alice@example.com" {
			t.Errorf("Verify %s = %+v, %v", scope, got, err)
		}
	}
	if got, err := s.Verify("alice@example.com", imapSecret, ScopeIMAP, ""); err != nil || got.ID != imapOnly.ID {
		t.Errorf("imap-only password over IMAP: %+v %v", got, err)
	}
	for _, tc := range []struct{ mailbox, secret, scope string }{
		{"alice@example.com", imapSecret, ScopeSMTP},
		{"alice@example.com", newSecret(), ScopeIMAP},
		{"alice@example.com", "", ScopeIMAP},
		{"bob@example.com", secret, ScopeIMAP},
		{"not a mailbox", secret, ScopeIMAP},
	} {
		if _, err := s.Verify(tc.mailbox, tc.secret, tc.scope, ""); err != ErrAuthFailed {
			t.Errorf("Verify(%q, %q, %s) = %v, want ErrAuthFailed itself", tc.mailbox, tc.secret, tc.scope, err)
		}
	}
}

func testListRevoke(t *testing.T, e *env) {
	o, c := e.fresh(t)
	s := e.open(t, o)
	a, _ := create(t, s, "a@example.com", "one", nil, time.Time{})
	c.Add(time.Second)
	b, secretB := create(t, s, "a@example.com", "two", nil, time.Time{})
	create(t, s, "b@example.com", "one", nil, time.Time{})
	all, err := s.ListPasswords("")
	if err != nil || !slices.Equal(ids(all)[:2], []string{a.ID, b.ID}) || len(all) != 3 {
		t.Fatalf("ListPasswords = %v %v", ids(all), err)
	}
	got, err := s.RevokePassword("A@example.com", b.ID)
	if err != nil || got.ID != b.ID || got.Name != "two" {
		t.Fatalf("RevokePassword = %+v %v", got, err)
	}
	if _, err := s.Verify("a@example.com", secretB, ScopeIMAP, ""); err != ErrAuthFailed {
		t.Errorf("revoked password verifies: %v", err)
	}
	if _, err := s.RevokePassword("a@example.com", b.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second revoke = %v, want ErrNotFound", err)
	}
	if ps, _ := s.ListPasswords("a@example.com"); !slices.Equal(ids(ps), []string{a.ID}) {
		t.Errorf("after revoke: %v", ids(ps))
	}
}

func testRevokeAll(t *testing.T, e *env) {
	o, _ := e.fresh(t)
	s := e.open(t, o)
	var secrets []string
	for i := range 3 {
		_, sec := create(t, s, "a@example.com", fmt.Sprint(i), nil, time.Time{})
		secrets = append(secrets, sec)
	}
	create(t, s, "b@example.com", "keep", nil, time.Time{})
	out, err := s.RevokeAll("a@example.com")
	if err != nil || len(out) != 3 {
		t.Fatalf("RevokeAll = %d %v", len(out), err)
	}
	for _, sec := range secrets {
		if _, err := s.Verify("a@example.com", sec, ScopeIMAP, ""); err != ErrAuthFailed {
			t.Errorf("revoked password verifies: %v", err)
		}
	}
	if out, err := s.RevokeAll("a@example.com"); err != nil || len(out) != 0 {
		t.Errorf("RevokeAll of nothing = %v %v", out, err)
	}
	if ps, _ := s.ListPasswords(""); len(ps) != 1 || ps[0].Mailbox != "b@example.com" {
		t.Errorf("other mailbox touched: %+v", ps)
	}
}

func testExpiry(t *testing.T, e *env) {
	o, c := e.fresh(t)
	s := e.open(t, o)
	p, secret := create(t, s, "a@example.com", "x", nil, c.Now().Add(time.Hour))
	if ok, err := s.PasswordActive("a@example.com", p.ID); !ok || err != nil {
		t.Fatalf("PasswordActive before expiry = %v %v", ok, err)
	}
	if _, err := s.Verify("a@example.com", secret, ScopeIMAP, ""); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Hour)
	if _, err := s.Verify("a@example.com", secret, ScopeIMAP, ""); err != ErrAuthFailed {
		t.Errorf("expired password verifies: %v", err)
	}
	if ok, err := s.PasswordActive("a@example.com", p.ID); ok || err != nil {
		t.Errorf("PasswordActive after expiry = %v %v", ok, err)
	}
	q, _ := create(t, s, "a@example.com", "y", nil, time.Time{})
	s.RevokePassword("a@example.com", q.ID)
	if ok, err := s.PasswordActive("a@example.com", q.ID); ok || err != nil {
		t.Errorf("PasswordActive after revoke = %v %v", ok, err)
	}
}

func testLimits(t *testing.T, e *env) {
	o, _ := e.fresh(t)
	o.MaxPasswords = 3
	s := e.open(t, o)
	create(t, s, "a@example.com", "Phone", nil, time.Time{})
	if _, _, err := s.CreatePassword("a@example.com", "phone", nil, time.Time{}); !errors.Is(err, ErrDuplicateName) {
		t.Errorf("duplicate name: %v", err)
	}
	create(t, s, "a@example.com", "two", nil, time.Time{})
	create(t, s, "a@example.com", "three", nil, time.Time{})
	if _, _, err := s.CreatePassword("a@example.com", "four", nil, time.Time{}); !errors.Is(err, ErrTooManyPasswords) {
		t.Errorf("over the limit: %v", err)
	}
	create(t, s, "b@example.com", "Phone", nil, time.Time{}) // limits are per mailbox
}

func testLastUsedFlush(t *testing.T, e *env) {
	o, _ := e.fresh(t)
	s := e.open(t, o)
	p, secret := create(t, s, "a@example.com", "x", nil, time.Time{})
	if _, err := s.Verify("a@example.com", secret, ScopeSMTP, "192.0.2.9"); err != nil {
		t.Fatal(err)
	}
	ps, _ := s.ListPasswords("a@example.com")
	if len(ps) != 1 || ps[0].LastUsed == nil || ps[0].LastUsed.Remote != "192.0.2.9" {
		t.Fatalf("pending last use not listed: %+v", ps)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := s.be.getPassword("a@example.com", p.ID)
	if err != nil || r.LastUsed == nil || r.LastUsed.Proto != ScopeSMTP {
		t.Fatalf("flushed last use: %+v %v", r, err)
	}
	s.Close()
	s = e.open(t, o)
	if ps, _ := s.ListPasswords(""); len(ps) != 1 || ps[0].LastUsed == nil || ps[0].LastUsed.Remote != "192.0.2.9" {
		t.Errorf("last use after reopen: %+v", ps)
	}
}

func testReopen(t *testing.T, e *env) {
	o, _ := e.fresh(t)
	s := e.open(t, o)
	_, secret := create(t, s, "a@example.com", "x", nil, time.Time{})
	s.Close()
	s = e.open(t, o)
	if _, err := s.Verify("a@example.com", secret, ScopeIMAP, ""); err != nil {
		t.Errorf("after reopen: %v", err)
	}
}

func testConcurrency(t *testing.T, e *env) {
	o, _ := e.fresh(t)
	o.MaxPasswords = 10
	s := e.open(t, o)
	var wg sync.WaitGroup
	var mu sync.Mutex
	secrets := map[string]string{}
	var over int
	for i := range 16 {
		wg.Go(func() {
			p, sec, err := s.CreatePassword("a@example.com", fmt.Sprint(i%12), nil, time.Time{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				secrets[p.ID] = sec
			case errors.Is(err, ErrTooManyPasswords) || errors.Is(err, ErrDuplicateName):
				over++
			default:
				t.Errorf("create: %v", err)
			}
		})
	}
	wg.Wait()
	if len(secrets) != 10 || over != 6 {
		t.Fatalf("%d created, %d refused; want 10 and 6", len(secrets), over)
	}
	for id, sec := range secrets {
		wg.Go(func() {
			if p, err := s.Verify("a@example.com", sec, ScopeIMAP, ""); err != nil || p.ID != id {
				t.Errorf("parallel verify: %+v %v", p, err)
			}
		})
	}
	wg.Wait()
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))
