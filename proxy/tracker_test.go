package proxy

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestTrackerClosePassword(t *testing.T) {
	var tr Tracker
	var closed atomic.Int32
	add := func(mailbox, id string) {
		s := &Session{Mailbox: mailbox, PasswordID: id}
		var remove func()
		s.Close = func() { closed.Add(1); remove() }
		remove = tr.Add(s)
	}
	add("a@x", "p1")
	add("a@x", "p1")
	add("a@x", "p2")
	add("b@x", "p3")
	if n := tr.ClosePassword("p1"); n != 2 || closed.Load() != 2 || tr.Len() != 2 {
		t.Fatalf("ClosePassword = %d, closed %d, left %d; want 2, 2, 2", n, closed.Load(), tr.Len())
	}
	if n := tr.CloseMailbox("a@x"); n != 1 || tr.Len() != 1 {
		t.Fatalf("CloseMailbox = %d, left %d; want 1, 1", n, tr.Len())
	}
}

func TestTrackerWait(t *testing.T) {
	var tr Tracker
	s := &Session{}
	remove := tr.Add(s)
	s.Close = remove
	go func() { time.Sleep(10 * time.Millisecond); remove() }()
	if !tr.Wait(context.Background()) {
		t.Fatal("Wait = false, want true after the session ended")
	}
	// A session that never ends is closed when the context expires.
	stuck := &Session{}
	var closed atomic.Bool
	r2 := tr.Add(stuck)
	stuck.Close = func() { closed.Store(true); r2() }
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if tr.Wait(ctx) || !closed.Load() || tr.Len() != 0 {
		t.Fatalf("Wait on cancelled ctx: closed=%v len=%d", closed.Load(), tr.Len())
	}
}
