package store

import (
	"fmt"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// commits returns the id of the last committed write transaction: bbolt
// bumps it on every commit, so an unchanged id means nothing was written.
func commits(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	s.bdb().View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
	return id
}

// storedLastUse reads a password's last use straight from the database,
// bypassing the pending map.
func storedLastUse(t *testing.T, s *Store, mailbox, id string) *LastUse {
	t.Helper()
	var lu *LastUse
	s.bdb().View(func(tx *bolt.Tx) error {
		ps, err := readPasswords(mailbox, tx.Bucket(bucketPasswords).Bucket([]byte(mailbox)), nil)
		for _, p := range ps {
			if p.ID == id {
				lu = p.LastUsed
			}
		}
		return err
	})
	return lu
}

// pageWrites is bbolt's count of pages written to the file.
func pageWrites(s *Store) int64 {
	st := s.bdb().Stats()
	return st.TxStats.GetWrite()
}

func TestVerifyDoesNotWrite(t *testing.T) {
	s, _ := newStore(t)
	p, secret := create(t, s, "a@example.com", "x", nil, time.Time{})
	before, pages := commits(t, s), pageWrites(s)
	for range 50 {
		if _, err := s.Verify("a@example.com", secret, ScopeIMAP, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		s.Verify("a@example.com", "wrong", ScopeIMAP, "192.0.2.1")
		s.Verify("nobody@example.com", secret, ScopeIMAP, "192.0.2.1")
	}
	if after := commits(t, s); after != before {
		t.Errorf("Verify committed %d write transactions", after-before)
	}
	if w := pageWrites(s); w != pages {
		t.Errorf("Verify wrote %d pages", w-pages)
	}
	if storedLastUse(t, s, "a@example.com", p.ID) != nil {
		t.Error("last use on disk before any flush")
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := commits(t, s) - before; got != 1 {
		t.Errorf("Flush of 50 uses committed %d transactions, want 1", got)
	}
	if pageWrites(s) == pages {
		t.Error("page write counter did not move on Flush: it observes nothing")
	}
	if err := s.Flush(); err != nil || commits(t, s)-before != 1 {
		t.Errorf("empty Flush wrote: %v", err)
	}
}

func TestLastUsedCoalescedAndPersisted(t *testing.T) {
	o, c := testOptions(t)
	s := openT(t, o)
	p, secret := create(t, s, "a@example.com", "x", nil, time.Time{})
	c.Add(time.Second)
	unused, _ := create(t, s, "a@example.com", "y", nil, time.Time{})
	s.Verify("a@example.com", secret, ScopeIMAP, "192.0.2.1")
	c.Add(time.Minute)
	want := LastUse{Time: c.Now(), Remote: "192.0.2.2", Proto: ScopeSMTP}
	s.Verify("a@example.com", secret, ScopeSMTP, "192.0.2.2")

	ps, _ := s.ListPasswords("a@example.com")
	if ps[0].ID != p.ID || ps[0].LastUsed == nil || *ps[0].LastUsed != want {
		t.Errorf("ListPasswords before flush: %+v, want last use %+v", ps[0].LastUsed, want)
	}
	if ps[1].ID != unused.ID || ps[1].LastUsed != nil {
		t.Errorf("unused password shows %+v", ps[1].LastUsed)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, o)
	if lu := storedLastUse(t, s, "a@example.com", p.ID); lu == nil || *lu != want {
		t.Errorf("after Close+Open: %+v, want %+v", lu, want)
	}
}

func TestFlushSkipsRevoked(t *testing.T) {
	s, _ := newStore(t)
	p, secret := create(t, s, "a@example.com", "x", nil, time.Time{})
	s.Verify("a@example.com", secret, ScopeIMAP, "")
	s.RevokePassword("a@example.com", p.ID)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if ps, _ := s.ListPasswords(""); len(ps) != 0 {
		t.Errorf("flush brought back a revoked password: %+v", ps)
	}
}

func TestFlushLoop(t *testing.T) {
	o, _ := testOptions(t)
	o.FlushInterval = 5 * time.Millisecond
	s := openT(t, o)
	p, secret := create(t, s, "a@example.com", "x", nil, time.Time{})
	s.Verify("a@example.com", secret, ScopeIMAP, "192.0.2.1")
	// No deadline here: if the loop never flushes, the test binary's
	// -timeout fails the run.
	for storedLastUse(t, s, "a@example.com", p.ID) == nil {
		time.Sleep(time.Millisecond)
	}
}

func TestConcurrentUse(t *testing.T) {
	o, _ := testOptions(t)
	o.FlushInterval = time.Millisecond
	s := openT(t, o)
	_, secret := create(t, s, "a@example.com", "base", nil, time.Time{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				if _, err := s.Verify("a@example.com", secret, ScopeIMAP, "192.0.2.1"); err != nil {
					errs <- err
				}
				s.Verify("a@example.com", "nope", ScopeSMTP, "")
				s.ListPasswords("")
				if i%5 == 0 {
					if _, _, err := s.CreatePassword("a@example.com", fmt.Sprintf("w%d-%d", w, i), nil, time.Time{}); err != nil {
						errs <- err
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if err := s.Flush(); err != nil {
				errs <- err
			}
			s.Accounts()
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if ps, _ := s.ListPasswords("a@example.com"); len(ps) != 21 {
		t.Errorf("%d passwords, want 21", len(ps))
	}
}
