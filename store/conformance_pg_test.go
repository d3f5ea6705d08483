package store

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// conformancePG are the cases that need several instances on one
// database, or the database itself (stopped, restarted, edited).
var conformancePG = []conformanceCase{
	{"TwoInstances", testTwoInstances},
	{"MatchPadding", testMatchPadding},
	{"NoWritePerLogin", testNoWritePerLogin},
	{"LockRefreshAcrossInstances", testLockRefreshAcross},
	{"NewerSchema", testPGNewerSchema},
	{"ConcurrentOpen", testConcurrentOpen},
	{"Copy", testCopy},
	{"BackupUnsupported", testBackupUnsupported},
	{"Resync", testResync},
	{"Outage", testOutage},
	{"Hang", testHang},
}

// hangGuard bounds waits for something that must happen, so a broken
// store fails the test instead of hanging it. It is not a latency
// assertion: the benchmark measures how fast.
const hangGuard = 60 * time.Second

// changes returns an OnChange that feeds a channel.
func changes() (func(Change), chan Change) {
	ch := make(chan Change, 100)
	return func(c Change) { ch <- c }, ch
}

func waitChange(t *testing.T, ch chan Change, want Change) {
	t.Helper()
	deadline := time.After(hangGuard)
	for {
		select {
		case got := <-ch:
			if got == want {
				return
			}
			t.Logf("change %+v while waiting for %+v", got, want)
		case <-deadline:
			t.Fatalf("no change %+v", want)
		}
	}
}

// sql runs statements straight against the database of o.
func sql(t *testing.T, o *Options, stmt string, args ...any) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, o.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, stmt, args...); err != nil {
		t.Fatal(err)
	}
}

func testTwoInstances(t *testing.T, e *env) {
	oA, _ := e.fresh(t)
	oB := *oA
	fA, chA := changes()
	fB, chB := changes()
	oA.OnChange, oB.OnChange = fA, fB
	a, b := openT(t, oA), openT(t, &oB)
	p, secret := create(t, a, "a@example.com", "x", nil, time.Time{})
	if got, err := b.Verify("a@example.com", secret, ScopeIMAP, ""); err != nil || got.ID != p.ID {
		t.Fatalf("created on A, verified on B: %+v %v", got, err)
	}
	if _, err := a.RevokePassword("a@example.com", p.ID); err != nil {
		t.Fatal(err)
	}
	want := Change{Kind: PasswordRevoked, Mailbox: "a@example.com", PasswordID: p.ID}
	waitChange(t, chB, want)
	waitChange(t, chA, want) // this instance hears its own changes too
	if _, err := b.Verify("a@example.com", secret, ScopeIMAP, ""); err != ErrAuthFailed {
		t.Errorf("revoked on A, verified on B: %v", err)
	}
	b.RevokeAll("a@example.com")
	waitChange(t, chA, Change{Kind: MailboxRevoked, Mailbox: "a@example.com"})
	// A CLI straight against the database: a store without a listener.
	cli := openT(t, func() *Options { o := oB; o.OnChange = nil; return &o }())
	cli.SaveRefreshToken("microsoft", "c@example.com", refresh)
	if err := cli.Unlink("c@example.com"); err != nil {
		t.Fatal(err)
	}
	waitChange(t, chA, Change{Kind: MailboxRevoked, Mailbox: "c@example.com"})
	waitChange(t, chB, Change{Kind: MailboxRevoked, Mailbox: "c@example.com"})
}

// testNoWritePerLogin: logins on A are not written until A flushes, so B
// does not see them before; after the flush it does.
func testNoWritePerLogin(t *testing.T, e *env) {
	oA, _ := e.fresh(t)
	a := openT(t, oA)
	oB := *oA
	b := openT(t, &oB)
	_, secret := create(t, a, "a@example.com", "x", nil, time.Time{})
	for range 50 {
		if _, err := a.Verify("a@example.com", secret, ScopeIMAP, "192.0.2.5"); err != nil {
			t.Fatal(err)
		}
	}
	if ps, _ := b.ListPasswords(""); ps[0].LastUsed != nil {
		t.Fatalf("a login was written before the flush: %+v", ps[0].LastUsed)
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	if ps, _ := b.ListPasswords(""); ps[0].LastUsed == nil || ps[0].LastUsed.Remote != "192.0.2.5" {
		t.Errorf("after the flush: %+v", ps[0].LastUsed)
	}
}

func testLockRefreshAcross(t *testing.T, e *env) {
	oA, _ := e.fresh(t)
	a := openT(t, oA)
	oB := *oA
	b := openT(t, &oB)
	unlock, err := a.LockRefresh(context.Background(), "microsoft", "a@example.com")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		u, err := b.LockRefresh(context.Background(), "microsoft", "a@example.com")
		if err != nil {
			t.Error(err)
		}
		got <- u
	}()
	// B's request is queued in the server behind A's lock.
	waitFor(t, func() bool { return waitingAdvisory(t, oA) == 1 })
	select {
	case <-got:
		t.Fatal("B got the refresh lock while A held it")
	default:
	}
	unlock()
	uB := <-got
	// A cancelled wait returns ctx's error.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		waitFor(t, func() bool { return waitingAdvisory(t, oA) == 1 })
		cancel()
	}()
	if _, err := a.LockRefresh(ctx, "microsoft", "a@example.com"); !errors.Is(err, context.Canceled) {
		t.Errorf("A while B holds, cancelled: %v", err)
	}
	uB()
}

// waitingAdvisory counts advisory lock requests not granted.
func waitingAdvisory(t *testing.T, o *Options) int {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, o.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor polls cond until it holds (or hangGuard passes).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testPGNewerSchema(t *testing.T, e *env) {
	o, _ := e.fresh(t)
	openT(t, o).Close()
	sql(t, o, `UPDATE mailgate_meta SET v = $1 WHERE k = 'version'`, []byte("99"))
	if _, err := Open(o); !errors.Is(err, ErrNewerSchema) {
		t.Errorf("Open = %v, want ErrNewerSchema", err)
	}
}

// testConcurrentOpen: instances starting at the same moment on a new
// database (and a key file none has created yet) all open.
func testConcurrentOpen(t *testing.T, e *env) {
	o, _ := e.fresh(t)
	var wg sync.WaitGroup
	stores := make([]*Store, 6)
	for i := range stores {
		wg.Go(func() {
			oi := *o
			s, err := Open(&oi)
			if err != nil {
				t.Errorf("instance %d: %v", i, err)
				return
			}
			stores[i] = s
			t.Cleanup(func() { s.Close() })
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	_, secret := create(t, stores[0], "a@example.com", "x", nil, time.Time{})
	for i, s := range stores {
		if _, err := s.Verify("a@example.com", secret, ScopeIMAP, ""); err != nil {
			t.Errorf("instance %d: %v", i, err)
		}
	}
}

func testBackupUnsupported(t *testing.T, e *env) {
	o, _ := e.fresh(t)
	s := openT(t, o)
	if _, err := s.Backup(&bytes.Buffer{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Backup = %v, want ErrUnsupported", err)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping = %v", err)
	}
}

// testMatchPadding: the login query returns MaxPasswords rows whether the
// mailbox is unknown, invalid, has a few passwords or the most allowed,
// so the work of a login does not tell which.
func testMatchPadding(t *testing.T, e *env) {
	o, _ := e.fresh(t)
	o.MaxPasswords = 5
	s := openT(t, o)
	for i := range 5 {
		create(t, s, "full@example.com", string(rune('a'+i)), nil, time.Time{})
	}
	create(t, s, "one@example.com", "x", nil, time.Time{})
	p := s.be.(*pgDB)
	for _, tc := range []struct {
		mailbox string
		known   bool
	}{{"nobody@example.com", true}, {"", false}, {"one@example.com", true}, {"full@example.com", true}, {"one@example.com", false}} {
		rows, _ := p.pool.Query(context.Background(), matchSQL, tc.mailbox, tc.known, o.MaxPasswords)
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		if rows.Err() != nil || n != o.MaxPasswords {
			t.Errorf("match rows for %q (known %v) = %d %v, want %d", tc.mailbox, tc.known, n, rows.Err(), o.MaxPasswords)
		}
	}
}
