package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// testResync: after the database restarts, the listener reconnects by
// itself and reports one Resync; changes after that arrive again.
func testResync(t *testing.T, e *env) {
	oA, _ := e.fresh(t)
	f, ch := changes()
	oB := *oA
	oB.OnChange = f
	a, b := openT(t, oA), openT(t, &oB)
	_ = b
	restart(t, e)
	waitChange(t, ch, Change{Kind: Resync})
	p, _ := create(t, a, "a@example.com", "x", nil, time.Time{})
	waitFor(t, func() bool {
		// Until the pool has replaced its dead connections.
		_, err := a.RevokePassword("a@example.com", p.ID)
		return err == nil || errors.Is(err, ErrNotFound)
	})
	waitChange(t, ch, Change{Kind: PasswordRevoked, Mailbox: "a@example.com", PasswordID: p.ID})
}

func restart(t *testing.T, e *env) {
	t.Helper()
	if err := e.cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.cluster.Start(); err != nil {
		t.Fatal(err)
	}
}

// testOutage: while the database is down every operation fails with
// ErrUnavailable (a login is never ErrAuthFailed); once it is back the
// same Store works again without reopening.
func testOutage(t *testing.T, e *env) {
	o, _ := e.fresh(t)
	s := openT(t, o)
	_, secret := create(t, s, "a@example.com", "x", nil, time.Time{})
	s.SaveRefreshToken("microsoft", "a@example.com", refresh)
	if err := e.cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.cluster.Start() }) // for the cases after this one, if it fails early
	if _, err := s.Verify("a@example.com", secret, ScopeIMAP, ""); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Verify while down: %v, want ErrUnavailable", err)
	}
	if _, _, err := s.CreatePassword("a@example.com", "y", nil, time.Time{}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("CreatePassword while down: %v", err)
	}
	if _, err := s.LoadToken("microsoft", "a@example.com"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("LoadToken while down: %v", err)
	}
	if _, err := s.PasswordActive("a@example.com", "x"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("PasswordActive while down: %v", err)
	}
	if _, err := s.LockRefresh(context.Background(), "microsoft", "a@example.com"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("LockRefresh while down: %v", err)
	}
	if err := s.Ping(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping while down: %v", err)
	}
	if _, err := Open(o); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Open while down: %v", err)
	}
	if err := e.cluster.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, err := s.Verify("a@example.com", secret, ScopeIMAP, "")
		return err == nil
	})
}

// testHang: while the database hangs (every process stopped, connections
// open and silent) operations fail with ErrUnavailable, bounded by
// pgQueryTimeout, instead of waiting; after the database thaws logins work
// again and changes arrive (by the same listening connection if it
// survived, which loses nothing, or after a reconnect and a Resync).
func testHang(t *testing.T, e *env) {
	o, _ := e.fresh(t)
	f, ch := changes()
	o.OnChange = f
	s := openT(t, o)
	_, secret := create(t, s, "a@example.com", "x", nil, time.Time{})
	if err := e.cluster.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.cluster.Resume() })
	if _, err := s.Verify("a@example.com", secret, ScopeIMAP, ""); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Verify while hung: %v, want ErrUnavailable", err)
	}
	if err := e.cluster.Resume(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, err := s.Verify("a@example.com", secret, ScopeIMAP, "")
		return err == nil
	})
	s.RevokeAll("a@example.com")
	waitChange(t, ch, Change{Kind: MailboxRevoked, Mailbox: "a@example.com"})
}
