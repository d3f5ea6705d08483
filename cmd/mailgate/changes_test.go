package main

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"mailgate/proxy"
	"mailgate/store"
)

// TestChanges: the store's change feed ends this daemon's sessions through
// the registry (so its tombstones refuse logins in flight), and a Resync
// finds what was revoked while the feed was down. The store is a real
// bbolt one; the changes are handed in as the postgres listener would.
func TestChanges(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(&store.Options{Path: filepath.Join(dir, "db"), KeyFile: filepath.Join(dir, "key")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var reg proxy.Registry
	c := newChanges(&reg, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c.store.Store(st)
	c.settle = 200 * time.Millisecond
	go c.run(t.Context())

	session := func(mailbox string) (*proxy.Session, store.Password) {
		t.Helper()
		p, _, err := st.CreatePassword(mailbox, "p"+time.Now().Format("150405.000000000"), nil, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		s := &proxy.Session{Mailbox: mailbox, PasswordID: p.ID}
		if !reg.Register(s, reg.Seq()) {
			t.Fatal("Register refused")
		}
		return s, p
	}
	ann1, p1 := session("ann@example.com")
	ann2, _ := session("ann@example.com")
	bob, pb := session("bob@example.com")
	carl, _ := session("carl@example.com")

	inFlight := reg.Seq() // a login of p1 that checked its password now
	c.apply(store.Change{Kind: store.PasswordRevoked, Mailbox: "ann@example.com", PasswordID: p1.ID})
	if !ended(ann1) || ended(ann2) {
		t.Fatalf("PasswordRevoked: ann1 ended %v, ann2 ended %v", ended(ann1), ended(ann2))
	}
	if reg.Register(&proxy.Session{Mailbox: "ann@example.com", PasswordID: p1.ID}, inFlight) {
		t.Fatal("a login in flight of the revoked password registered")
	}
	c.apply(store.Change{Kind: store.MailboxRevoked, Mailbox: "ann@example.com"})
	if !ended(ann2) || ended(bob) {
		t.Fatalf("MailboxRevoked: ann2 ended %v, bob ended %v", ended(ann2), ended(bob))
	}

	// Revoked while the feed was down: no change came, only the Resync.
	if _, err := st.RevokePassword("bob@example.com", pb.ID); err != nil {
		t.Fatal(err)
	}
	c.apply(store.Change{Kind: store.Resync})
	select {
	case <-bob.Context().Done():
	case <-time.After(10 * time.Second): // hang guard
		t.Fatal("Resync did not end the session of a password revoked meanwhile")
	}
	if !c.recheck() || ended(carl) {
		t.Fatal("a re-check ended the session of a password still active")
	}

	// A login that checked its password before a revoke the feed missed
	// registers just after the first pass listed the sessions (no session
	// of that password was live, so no tombstone refuses it): the second
	// pass, c.settle later, ends it. erin's session, revoked too, shows
	// that the first pass has run.
	erin, pe := session("erin@example.com")
	pd, _, err := st.CreatePassword("dan@example.com", "phone", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	inFlight = reg.Seq()
	for _, p := range []store.Password{pe, pd} {
		if _, err := st.RevokePassword(p.Mailbox, p.ID); err != nil {
			t.Fatal(err)
		}
	}
	c.apply(store.Change{Kind: store.Resync})
	<-erin.Context().Done()
	late := &proxy.Session{Mailbox: "dan@example.com", PasswordID: pd.ID}
	if !reg.Register(late, inFlight) {
		t.Fatal("Register refused")
	}
	select {
	case <-late.Context().Done():
	case <-time.After(10 * time.Second): // hang guard
		t.Fatal("the second pass of a Resync did not end a session registered after the first")
	}
}

func ended(s *proxy.Session) bool { return s.Context().Err() != nil }
