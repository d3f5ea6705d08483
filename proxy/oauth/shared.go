package oauth

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/oauth2"

	"mailgate/store"
)

// Refreshing a delegated token with several instances on one store
// (issue 15). Microsoft rotates refresh tokens on use (docs/clients.md,
// "Refresh tokens rotate and expire"): two instances redeeming the same
// refresh token would leave one of them, or the store, with a dead one. So
// an instance first looks for the access token another one shared; if it
// must refresh, it holds the store's refresh lock for the mailbox, reads
// again (the instance it waited for has just refreshed: its access token is
// taken and the old refresh token is never sent again), refreshes, and
// saves the rotated refresh token with the access token before unlocking.

// lockWaitError means a flight gave up waiting for the refresh lock at
// until, the deadline of the login that started it; a login that joined the
// flight with a later deadline asks again (Token).
type lockWaitError struct {
	until time.Time // zero: the flight's own timeout
	err   error
}

func (e *lockWaitError) Error() string { return "refresh lock: wait ended: " + e.err.Error() }
func (e *lockWaitError) Unwrap() error { return e.err }

// laterThan reports whether a login with deadline d (zero: none) would
// have waited longer than the flight that failed with e.
func (e *lockWaitError) laterThan(d time.Time) bool {
	return !e.until.IsZero() && (d.IsZero() || d.After(e.until))
}

// refresh returns the mailbox's access token, shared or refreshed.
func (m *Manager) refresh(ctx context.Context, key, mailbox string, waitBy time.Time) (any, error) {
	e := m.entryOrZero(key)
	seen := ""
	if e.pending.Refresh == "" { // with a pending token the store is behind us
		t, err := m.store.LoadToken(m.ProviderName(), mailbox)
		if err != nil {
			return nil, fmt.Errorf("%w: load token: %w", ErrTransient, err)
		}
		if m.usable(e, t, shareMargin(t)) {
			if tok, ok := m.share(key, t); ok {
				return tok, nil
			}
		}
		seen = t.Access
	}
	unlock, err := m.lock(ctx, mailbox, waitBy)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return m.refreshLocked(ctx, key, mailbox, seen)
}

// lock takes the store's refresh lock, waiting no longer than the login
// that asked (waitBy) or the flight.
func (m *Manager) lock(ctx context.Context, mailbox string, waitBy time.Time) (func(), error) {
	if !waitBy.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, waitBy)
		defer cancel()
	}
	unlock, err := m.store.LockRefresh(ctx, m.ProviderName(), mailbox)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTransient, &lockWaitError{until: waitBy, err: err})
	}
	return unlock, nil
}

// refreshLocked runs under the refresh lock. A live access token other
// than seen (the one too close to its expiry before the lock) was shared by
// the instance that held the lock before: it is taken even if short-lived.
func (m *Manager) refreshLocked(ctx context.Context, key, mailbox, seen string) (any, error) {
	e := m.entryOrZero(key)
	t, err := m.store.LoadToken(m.ProviderName(), mailbox)
	if err != nil && e.pending.Refresh == "" {
		return nil, fmt.Errorf("%w: load token: %w", ErrTransient, err)
	}
	stored := t.Refresh
	if e.pending.Refresh != "" {
		t = m.saveAgainLocked(key, mailbox, e.pending, t)
	} else if m.usable(e, t, shareMargin(t)) || (t.Access != seen && m.usable(e, t, 0)) {
		if tok, ok := m.share(key, t); ok {
			return tok, nil
		}
	}
	rt := t.Refresh
	if rt == "" {
		return nil, fmt.Errorf("%w: %s is not linked", ErrRelink, mailbox)
	}
	if e.deadRT == rt { // refused before: spare the provider
		return nil, e.deadErr
	}
	start := time.Now()
	tok, err := m.retry(ctx, func() (*oauth2.Token, error) {
		return m.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	})
	if err != nil {
		return nil, m.told(start, m.failed(key, mailbox, rt, err))
	}
	m.told(start, nil)
	return m.keep(key, mailbox, tok, rt, stored)
}

// keep saves a refresh's tokens if the store still holds the grant the
// refresh started from: rt, or stored, what the store held under the lock
// (older than rt when rt is a rotated token the store failed to save).
// "account unlink" and a new link take the refresh lock, so through this
// manager neither lands while the request is at the provider; this check
// covers the writers that hold no lock (the CLI straight on the database
// without a usable oauth section). Saving then would link an unlinked
// mailbox again, or replace a new link with the old grant. Unlinked: the
// tokens are dropped and the login gets ErrRelink. Linked again: the new
// link stays, and the logins that waited get this access token (it opens
// the mailbox) without it being cached. A store that cannot be read says
// nothing: the tokens are saved as before.
func (m *Manager) keep(key, mailbox string, tok *oauth2.Token, rt, stored string) (any, error) {
	cur, err := m.store.LoadRefreshToken(m.ProviderName(), mailbox)
	switch {
	case err != nil || cur == rt || (cur == stored && stored != ""):
		m.saveRefreshed(key, mailbox, tok, rt)
	case cur == "":
		m.cache.Delete(key)
		m.log.Info("oauth: mailbox unlinked during a refresh; its tokens are dropped", "user", mailbox)
		return nil, fmt.Errorf("%w: %s was unlinked during the refresh", ErrRelink, mailbox)
	default:
		m.log.Info("oauth: mailbox linked again during a refresh; the old grant's tokens are not kept", "user", mailbox)
	}
	return tok.AccessToken, nil
}

// usable reports whether the store's access token may be used: the
// mailbox is linked, the upstream has not refused the token here, and it
// lives longer than margin.
func (m *Manager) usable(e entry, t store.Token, margin time.Duration) bool {
	return t.Refresh != "" && t.Access != "" && t.Access != e.refused &&
		t.AccessExpiry.Sub(m.now()) > margin
}

// shareMargin is the life a shared access token must have left to be
// taken: what the cache keeps of a token (replaceAt), the early-refresh
// margin, or half the life of a short-lived one (else every instance
// would refresh a token shorter-lived than the margin for itself).
func shareMargin(t store.Token) time.Duration {
	if life := t.AccessExpiry.Sub(t.Saved); !t.Saved.IsZero() && life < 2*earlyRefresh {
		return life / 2
	}
	return earlyRefresh
}

// share caches the store's access token and returns it, unless the
// upstream refused that token here since this flight looked at the cache:
// a login's Invalidate can land between the flight's read of the entry and
// this, and caching the token again would fail the login's retry too.
func (m *Manager) share(key string, t store.Token) (string, bool) {
	var ok bool
	m.update(key, func(e entry) entry {
		if ok = t.Access != e.refused; !ok {
			return e
		}
		return entry{access: t.Access, refreshAt: m.replaceAt(t.AccessExpiry),
			saveAfter: m.now().Add(saveRetry), refused: e.refused}
	})
	return t.Access, ok
}

// save stores the refresh token with the access token it gave (which also
// records the time of this refresh) and caches the access token. If the
// store fails, the rotated token is kept in memory for the next refresh and
// saved again later.
func (m *Manager) save(key, mailbox string, tok *oauth2.Token, oldRT string) {
	if tok.RefreshToken == "" { // not rotated (RFC 6749 section 6)
		tok.RefreshToken = oldRT
	}
	t := store.Token{Refresh: tok.RefreshToken, Access: tok.AccessToken, AccessExpiry: m.expiry(tok)}
	var pending store.Token
	if err := m.store.SaveToken(m.ProviderName(), mailbox, t); err != nil {
		m.log.Error("oauth: save refresh token", "user", mailbox, "err", err)
		pending = t
	}
	m.putToken(key, tok.AccessToken, m.replaceAt(t.AccessExpiry), pending)
}

// saveAgain saves a rotated refresh token the store refused before, under
// the refresh lock so as not to overwrite a newer one. It runs in its own
// flight, started by a login that found the access token in the cache.
func (m *Manager) saveAgain(key string, pending store.Token) error {
	ctx, cancel := context.WithTimeout(context.Background(), flightTimeout)
	defer cancel()
	mailbox := key
	unlock, err := m.store.LockRefresh(ctx, m.ProviderName(), mailbox)
	if err != nil {
		m.delaySave(key, pending)
		return err
	}
	defer unlock()
	t, _ := m.store.LoadToken(m.ProviderName(), mailbox)
	m.saveAgainLocked(key, mailbox, pending, t)
	return nil
}

// saveAgainLocked saves pending unless the store already holds it, and
// returns what the store now holds (pending either way, since it is newer:
// this instance rotated the store's refresh token away).
func (m *Manager) saveAgainLocked(key, mailbox string, pending, cur store.Token) store.Token {
	if cur.Refresh != pending.Refresh {
		if err := m.store.SaveToken(m.ProviderName(), mailbox, pending); err != nil {
			m.log.Error("oauth: save refresh token again", "user", mailbox, "err", err)
			m.delaySave(key, pending)
			return pending
		}
		m.log.Info("oauth: rotated refresh token saved after a store failure", "user", mailbox)
	}
	m.update(key, func(e entry) entry {
		if e.pending.Refresh == pending.Refresh {
			e.pending = store.Token{}
		}
		return e
	})
	return pending
}

// delaySave puts off the next attempt to save pending by saveRetry.
func (m *Manager) delaySave(key string, pending store.Token) {
	m.update(key, func(e entry) entry {
		if e.pending.Refresh == pending.Refresh {
			e.saveAfter = m.now().Add(saveRetry)
		}
		return e
	})
}

func (m *Manager) entryOrZero(key string) entry {
	if e := m.entry(key); e != nil {
		return *e
	}
	return entry{}
}
