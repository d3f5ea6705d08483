package proxy

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// Session is one authenticated client session, IMAP or SMTP.
type Session struct {
	Proto      string
	Mailbox    string
	PasswordID string
	Remote     netip.Addr
	Started    time.Time
	// Close ends the session at once (both connections). It must be safe to
	// call more than once and from any goroutine.
	Close func()
}

// Tracker knows every live session so that revoking a password can end the
// sessions that logged in with it and shutdown can wait for them. One Tracker
// is shared by the IMAP and SMTP servers. The zero value is ready to use.
type Tracker struct {
	mu       sync.Mutex
	sessions map[*Session]struct{}
	changed  chan struct{} // closed and replaced whenever a session ends
}

// Add registers s and returns the function that removes it again.
func (t *Tracker) Add(s *Session) (remove func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sessions == nil {
		t.sessions = make(map[*Session]struct{})
	}
	t.sessions[s] = struct{}{}
	var once sync.Once
	return func() { once.Do(func() { t.remove(s) }) }
}

func (t *Tracker) remove(s *Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.sessions, s)
	if t.changed != nil {
		close(t.changed)
		t.changed = nil
	}
}

// CloseMatching closes every session for which match returns true and
// reports how many there were.
func (t *Tracker) CloseMatching(match func(*Session) bool) int {
	var victims []*Session
	t.mu.Lock()
	for s := range t.sessions {
		if match(s) {
			victims = append(victims, s)
		}
	}
	t.mu.Unlock()
	// Close outside the lock: Close ends in remove, which takes it.
	for _, s := range victims {
		s.Close()
	}
	return len(victims)
}

// ClosePassword closes the sessions that logged in with password id.
func (t *Tracker) ClosePassword(id string) int {
	return t.CloseMatching(func(s *Session) bool { return s.PasswordID == id })
}

// CloseMailbox closes every session of mailbox.
func (t *Tracker) CloseMailbox(mailbox string) int {
	return t.CloseMatching(func(s *Session) bool { return s.Mailbox == mailbox })
}

// Len returns the number of live sessions.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sessions)
}

// Snapshot returns a copy of the live sessions.
func (t *Tracker) Snapshot() []Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Session, 0, len(t.sessions))
	for s := range t.sessions {
		out = append(out, *s)
	}
	return out
}

// Wait blocks until no session is left or ctx is done; then it closes what is
// left. It reports whether every session ended by itself.
func (t *Tracker) Wait(ctx context.Context) bool {
	for {
		t.mu.Lock()
		if len(t.sessions) == 0 {
			t.mu.Unlock()
			return true
		}
		if t.changed == nil {
			t.changed = make(chan struct{})
		}
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			t.CloseMatching(func(*Session) bool { return true })
			return false
		}
	}
}
