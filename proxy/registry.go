package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Why a session was ended by someone other than its client; the cause of
// Session.Context.
var (
	ErrRevoked  = errors.New("app password revoked or mailbox unlinked")
	ErrExpired  = errors.New("app password expired")
	ErrStopping = errors.New("server stopping")
)

// tombstoneTTL is how long a revocation is remembered for logins that were
// checking their password while it happened. A login registers within
// microseconds of its password check, and every pre-auth deadline is far
// shorter than this.
const tombstoneTTL = 2 * time.Minute

// Session is one client session that passed the password check. It is
// registered before the upstream login, so that a revoke, an unlink or the
// password's expiry ends it at whatever stage it is in: its Context is
// cancelled, and the front end closes its connections (and fails a login
// still in flight) when that happens.
type Session struct {
	Proto      string
	Mailbox    string // canonical
	PasswordID string
	Remote     netip.Addr
	Started    time.Time
	Expires    time.Time // of the app password; zero means never

	ctx    context.Context
	cancel context.CancelCauseFunc
	reg    *Registry
	expiry *time.Timer
	once   sync.Once
	done   []func() // run once by End, after the session left the registry
}

// Context is cancelled when the session must end: ErrRevoked, ErrExpired
// or ErrStopping (context.Cause tells which), or End.
func (s *Session) Context() context.Context { return s.ctx }

// Err is nil while the session may go on. Once it was ended for it, Err
// wraps ErrAuthFailed (revoked, expired: a login still in flight must fail
// like a wrong password) or ErrUnavailable (stopping, ended).
func (s *Session) Err() error {
	cause := context.Cause(s.ctx)
	switch {
	case cause == nil:
		return nil
	case errors.Is(cause, ErrRevoked), errors.Is(cause, ErrExpired):
		return fmt.Errorf("%w: %w", ErrAuthFailed, cause)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, cause)
}

// OnEnd adds f to what End runs (releasing a session slot, say).
func (s *Session) OnEnd(f func()) { s.done = append(s.done, f) }

// End removes the session from the registry and releases what it held. The
// front end calls it when the session is over; calling it again is
// harmless.
func (s *Session) End() {
	s.once.Do(func() {
		s.reg.remove(s)
		s.cancel(context.Canceled)
		if s.expiry != nil {
			s.expiry.Stop()
		}
		for _, f := range s.done {
			f()
		}
	})
}

// Registry knows every session that passed the password check, so that
// revoking a password, unlinking a mailbox or a password's expiry ends its
// sessions. One Registry is shared by all front ends. The zero value is
// ready to use.
//
// A login checks its password, then registers. A revoke that commits
// between the two would miss it, so revocations leave a tombstone: Register
// refuses a session whose login began (Seq) before a matching revocation.
type Registry struct {
	mu         sync.Mutex
	sessions   map[*Session]struct{}
	seq        uint64 // counts revocations
	tombstones []tombstone
	floor      uint64 // tombstones up to here were forgotten
	now        func() time.Time
}

type tombstone struct {
	seq        uint64
	at         time.Time
	passwordID string // or
	mailbox    string
}

// Seq returns the current revocation count. A login takes it before it
// checks the password and hands it to Register.
func (r *Registry) Seq() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// Register adds s, which passed its password check when the revocation
// count was seq. It refuses s (false) if a revocation matching it happened
// since, or so long ago that its tombstone is gone.
func (r *Registry) Register(s *Session, seq uint64) bool {
	s.reg = r
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq < r.floor || r.revokedSince(s, seq) {
		s.cancel(ErrRevoked)
		return false
	}
	if r.sessions == nil {
		r.sessions = make(map[*Session]struct{})
	}
	r.sessions[s] = struct{}{}
	if !s.Expires.IsZero() {
		s.expiry = time.AfterFunc(time.Until(s.Expires), func() { s.cancel(ErrExpired) })
	}
	return true
}

func (r *Registry) revokedSince(s *Session, seq uint64) bool {
	for _, t := range r.tombstones {
		if t.seq > seq && (t.passwordID == s.PasswordID && t.passwordID != "" || t.mailbox == s.Mailbox && t.mailbox != "") {
			return true
		}
	}
	return false
}

func (r *Registry) remove(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.sessions, s)
}

// ClosePassword ends the sessions that logged in with password id, and
// logins of it still in flight. Call it after the password's deletion
// committed. It reports how many registered sessions it ended.
func (r *Registry) ClosePassword(id string) int {
	return r.revoke(tombstone{passwordID: id}, func(s *Session) bool { return s.PasswordID == id })
}

// CloseMailbox ends every session of mailbox (canonical), and logins of it
// still in flight: after its passwords were deleted or its link removed.
func (r *Registry) CloseMailbox(mailbox string) int {
	return r.revoke(tombstone{mailbox: mailbox}, func(s *Session) bool { return s.Mailbox == mailbox })
}

func (r *Registry) revoke(t tombstone, match func(*Session) bool) int {
	r.mu.Lock()
	now := r.clock()
	r.seq++
	t.seq, t.at = r.seq, now
	r.prune(now)
	r.tombstones = append(r.tombstones, t)
	victims := r.matching(match)
	r.mu.Unlock()
	for _, s := range victims {
		s.cancel(ErrRevoked)
	}
	return len(victims)
}

// prune forgets tombstones older than tombstoneTTL.
func (r *Registry) prune(now time.Time) {
	i := 0
	for i < len(r.tombstones) && now.Sub(r.tombstones[i].at) > tombstoneTTL {
		r.floor = r.tombstones[i].seq
		i++
	}
	r.tombstones = r.tombstones[i:]
}

func (r *Registry) matching(match func(*Session) bool) []*Session {
	var out []*Session
	for s := range r.sessions {
		if match(s) {
			out = append(out, s)
		}
	}
	return out
}

// CloseAll ends every session (ErrStopping), at the end of a shutdown.
func (r *Registry) CloseAll() int {
	r.mu.Lock()
	victims := r.matching(func(*Session) bool { return true })
	r.mu.Unlock()
	for _, s := range victims {
		s.cancel(ErrStopping)
	}
	return len(victims)
}

// SessionKey is what a live session was authenticated with.
type SessionKey struct {
	Mailbox    string // canonical
	PasswordID string
}

// Live returns the mailbox and password of every registered session, each
// pair once, so that a caller can re-check them against the store: after a
// shared store's change feed was down, revocations made meanwhile by other
// instances are found this way (and ended through ClosePassword, which
// leaves its tombstone like any revocation).
func (r *Registry) Live() []SessionKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := make(map[SessionKey]bool, len(r.sessions))
	var out []SessionKey
	for s := range r.sessions {
		k := SessionKey{Mailbox: s.Mailbox, PasswordID: s.PasswordID}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// Len returns the number of registered sessions.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

func (r *Registry) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}
