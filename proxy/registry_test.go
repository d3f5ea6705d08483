package proxy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func register(t *testing.T, r *Registry, mailbox, id string) *Session {
	t.Helper()
	s := &Session{Mailbox: mailbox, PasswordID: id}
	if !r.Register(s, r.Seq()) {
		t.Fatalf("Register(%s, %s) refused", mailbox, id)
	}
	return s
}

func ended(s *Session) bool { return s.Context().Err() != nil }

func TestRegistryClose(t *testing.T) {
	var r Registry
	a1, a2 := register(t, &r, "a@x", "p1"), register(t, &r, "a@x", "p1")
	a3, b := register(t, &r, "a@x", "p2"), register(t, &r, "b@x", "p3")
	if n := r.ClosePassword("p1"); n != 2 || !ended(a1) || !ended(a2) || ended(a3) || ended(b) {
		t.Fatalf("ClosePassword = %d; ended %v %v %v %v", n, ended(a1), ended(a2), ended(a3), ended(b))
	}
	if !errors.Is(context.Cause(a1.Context()), ErrRevoked) || !errors.Is(a1.Err(), ErrAuthFailed) {
		t.Fatalf("cause %v, Err %v", context.Cause(a1.Context()), a1.Err())
	}
	a1.End()
	a2.End()
	if n := r.CloseMailbox("a@x"); n != 1 || !ended(a3) || ended(b) {
		t.Fatalf("CloseMailbox = %d", n)
	}
	a3.End()
	if n := r.CloseAll(); n != 1 || !errors.Is(b.Err(), ErrUnavailable) {
		t.Fatalf("CloseAll = %d, Err %v", n, b.Err())
	}
	b.End()
	if r.Len() != 0 {
		t.Fatalf("%d left", r.Len())
	}
}

// TestRegistryTombstones: a login that checked its password before a
// matching revocation is refused at Register; one that began after it, or
// that a revocation of something else raced, is not; tombstones go after
// tombstoneTTL, and a login older than the oldest forgotten one is refused.
func TestRegistryTombstones(t *testing.T) {
	now := time.Unix(1e9, 0)
	r := &Registry{now: func() time.Time { return now }}
	seq := r.Seq()
	r.ClosePassword("p1")
	r.CloseMailbox("b@x")
	if r.Register(&Session{Mailbox: "a@x", PasswordID: "p1"}, seq) {
		t.Fatal("login of a revoked password registered")
	}
	if r.Register(&Session{Mailbox: "b@x", PasswordID: "p9"}, seq) {
		t.Fatal("login of an unlinked mailbox registered")
	}
	if !r.Register(&Session{Mailbox: "a@x", PasswordID: "p2"}, seq) {
		t.Fatal("login of another password refused")
	}
	if !r.Register(&Session{Mailbox: "a@x", PasswordID: "p1"}, r.Seq()) {
		t.Fatal("login after the revoke refused (a new password with a reused id?)")
	}
	now = now.Add(tombstoneTTL + time.Second)
	r.ClosePassword("p7") // prunes the old ones
	if len(r.tombstones) != 1 {
		t.Fatalf("%d tombstones kept, want 1", len(r.tombstones))
	}
	if r.Register(&Session{Mailbox: "c@x", PasswordID: "p3"}, seq) {
		t.Fatal("a login older than the forgotten tombstones registered")
	}
}

func TestRegistryRefusedSessionIsEnded(t *testing.T) {
	var r Registry
	seq := r.Seq()
	r.ClosePassword("p1")
	s := &Session{Mailbox: "a@x", PasswordID: "p1"}
	if r.Register(s, seq) || !ended(s) || r.Len() != 0 {
		t.Fatal("refused session registered or left running")
	}
}

// TestRegistryLive: every registered session's mailbox and password, each
// pair once; ended sessions are gone.
func TestRegistryLive(t *testing.T) {
	var r Registry
	if got := r.Live(); len(got) != 0 {
		t.Fatalf("empty registry: %v", got)
	}
	register(t, &r, "a@x", "p1")
	register(t, &r, "a@x", "p1")
	register(t, &r, "a@x", "p2")
	b := register(t, &r, "b@x", "p3")
	b.End()
	got := r.Live()
	slices.SortFunc(got, func(x, y SessionKey) int { return strings.Compare(x.PasswordID, y.PasswordID) })
	want := []SessionKey{{"a@x", "p1"}, {"a@x", "p2"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Live = %v, want %v", got, want)
	}
}
