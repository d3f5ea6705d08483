package store

import (
	"fmt"
	"maps"
	"sync"
	"time"
)

// lastUsed holds last-use times that Verify noted but nobody has written
// yet. A write costs an fsync (bbolt) or a round trip and a WAL flush
// (postgres), and a login storm must not become a disk storm, so Verify
// only touches this map and Flush writes all entries in one transaction
// every FlushInterval (per instance, on postgres).
type lastUsed struct {
	mu      sync.Mutex
	entries map[pwKey]LastUse
	flushMu sync.Mutex // one Flush at a time
}

type pwKey struct{ mailbox, id string }

func newLastUsed() *lastUsed {
	return &lastUsed{entries: make(map[pwKey]LastUse)}
}

func (l *lastUsed) note(mailbox, id string, u LastUse) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries[pwKey{mailbox, id}] = u
}

func (l *lastUsed) forget(mailbox, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.entries, pwKey{mailbox, id})
}

// merge overwrites the LastUsed of each password that has a pending entry.
func (l *lastUsed) merge(ps []Password) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range ps {
		if u, ok := l.entries[pwKey{ps[i].Mailbox, ps[i].ID}]; ok {
			ps[i].LastUsed = &u
		}
	}
}

func (l *lastUsed) snapshot() map[pwKey]LastUse {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.entries)
}

// done drops the entries that were written, unless Verify replaced them
// with a newer use meanwhile.
func (l *lastUsed) done(written map[pwKey]LastUse) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, u := range written {
		if l.entries[k] == u {
			delete(l.entries, k)
		}
	}
}

// Flush writes pending last-used times now, in one transaction. Entries stay
// in memory (and visible to ListPasswords) until the write has committed.
// Passwords revoked meanwhile are skipped.
func (s *Store) Flush() error {
	s.pending.flushMu.Lock()
	defer s.pending.flushMu.Unlock()
	batch := s.pending.snapshot()
	if len(batch) == 0 {
		return nil
	}
	err := s.be.writeLastUsed(batch)
	if err != nil {
		return fmt.Errorf("flush last-used times: %w", err)
	}
	s.pending.done(batch)
	return nil
}

// flushLoop calls Flush every interval until Close.
func (s *Store) flushLoop(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.Flush(); err != nil {
				s.log.Error("store: flush", "err", err)
			}
		}
	}
}
