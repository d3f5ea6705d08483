package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func testLockRefresh(t *testing.T, e *env) {
	o, _ := e.fresh(t)
	s := e.open(t, o)
	unlock, err := s.LockRefresh(context.Background(), "microsoft", "a@example.com")
	if err != nil {
		t.Fatal(err)
	}
	// Another mailbox is not held up.
	u2, err := s.LockRefresh(context.Background(), "microsoft", "b@example.com")
	if err != nil {
		t.Fatal(err)
	}
	u2()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		u, err := s.LockRefresh(ctx, "microsoft", "a@example.com")
		if u != nil {
			u()
		}
		got <- err
	}()
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Errorf("LockRefresh while held, ctx cancelled: %v, want context.Canceled", err)
	}
	unlock()
	unlock() // twice is harmless
	u3, err := s.LockRefresh(context.Background(), "microsoft", "a@example.com")
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	u3()
}

func testKeyMismatch(t *testing.T, e *env) {
	o, _ := e.fresh(t)
	s := e.open(t, o)
	create(t, s, "a@example.com", "x", nil, time.Time{})
	s.Close()
	other, _ := e.fresh(t) // another key file, created on its own database
	openT(t, other).Close()
	o2 := *o
	o2.KeyFile = other.KeyFile
	if _, err := Open(&o2); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("other key file: %v, want ErrKeyMismatch", err)
	}
}

func testKeyNotCreated(t *testing.T, e *env) {
	o, _ := e.fresh(t)
	s := e.open(t, o)
	if err := s.SaveRefreshToken("microsoft", "a@example.com", refresh); err != nil {
		t.Fatal(err)
	}
	s.Close()
	o2 := *o
	o2.KeyFile = filepath.Join(t.TempDir(), "new.key")
	if _, err := Open(&o2); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("missing key file over data: %v, want ErrKeyMismatch", err)
	}
	if _, err := readKeyFile(o2.KeyFile); err == nil {
		t.Error("a key file was created over existing data")
	}
}
