package oauth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/oauth2"

	"mailgate/store"
)

const (
	// earlyRefresh: Exchange Online ends a session when its token expires
	// (docs/clients.md, "Exchange Online ends sessions when the token expires"),
	// so a client reconnecting then must find a token with time left. Tokens
	// living less than twice this are refreshed at half their lifetime.
	earlyRefresh = 5 * time.Minute
	// defaultLifetime is assumed when the provider sends no expires_in
	// (optional per RFC 6749 section 5.1).
	defaultLifetime = 10 * time.Minute
	// maxLifetime caps expires_in. Microsoft's longest access tokens
	// (continuous access evaluation) live up to 28 h; a larger value (the
	// oauth2 package lets through up to 68 years) is a provider's mistake,
	// and a token kept that long would be shared and reused until the
	// upstream refuses it.
	maxLifetime = 24 * time.Hour
	// flightTimeout bounds one refresh, retries included. The flight is
	// detached from the first caller's context so that a client giving up
	// does not fail the others waiting on the same refresh.
	flightTimeout = 30 * time.Second
	maxAttempts   = 3
	// saveRetry spaces the attempts to save a rotated refresh token the
	// store refused: often enough that another instance soon finds it,
	// rarely enough not to load a store that is struggling.
	saveRetry = 5 * time.Second
)

// entry is the cached state of one key (a mailbox, or the shared app key).
// Entries are immutable; updates replace them.
type entry struct {
	access    string
	refreshAt time.Time
	// pending is a rotated refresh token (with its access token) the store
	// failed to save: it is used for the next refresh and saved again.
	pending   store.Token
	saveAfter time.Time // when to try saving pending again
	deadRT    string    // refresh token the provider refused: never sent again
	deadErr   error
	// refused is the access token the upstream last refused: it is never
	// taken from the shared store again, even if ForgetAccess failed.
	refused string
}

// appKey is the cache key of a client-credentials token: one per client
// and tenant, shared by all mailboxes.
const appKey = "\x00app"

// saveKey prefixes a key in the singleflight group to save its pending
// refresh token again, apart from the key's token flight.
const saveKey = "\x00save\x00"

func (m *Manager) key(mailbox string) string {
	if m.cc != nil {
		return appKey
	}
	return mailbox
}

func (m *Manager) entry(key string) *entry {
	if v, ok := m.cache.Load(key); ok {
		return v.(*entry)
	}
	return nil
}

func (m *Manager) cached(key string) string {
	e := m.entry(key)
	if e == nil || e.access == "" || !m.now().Before(e.refreshAt) {
		return ""
	}
	if e.pending.Refresh != "" && !m.now().Before(e.saveAfter) {
		m.group.DoChan(saveKey+key, func() (any, error) { return nil, m.saveAgain(key, e.pending) })
	}
	return e.access
}

// update replaces key's entry with f applied to it (to the zero entry when
// there is none), without losing a concurrent replacement.
func (m *Manager) update(key string, f func(entry) entry) {
	for {
		old, ok := m.cache.Load(key)
		if !ok {
			n := f(entry{})
			if _, loaded := m.cache.LoadOrStore(key, &n); !loaded {
				return
			}
			continue
		}
		n := f(*old.(*entry))
		if m.cache.CompareAndSwap(key, old, &n) {
			return
		}
	}
}

// Token returns an access token for mailbox, from the cache or from one
// refresh shared by every caller asking for the same key meanwhile. Errors
// wrap ErrRelink or ErrTransient.
func (m *Manager) Token(ctx context.Context, mailbox string) (string, error) {
	mailbox = canonical(mailbox)
	if mailbox == "" {
		return "", fmt.Errorf("%w: empty mailbox", ErrRelink)
	}
	key := m.key(mailbox)
	if tok := m.cached(key); tok != "" {
		return tok, nil
	}
	// The flight is detached so that a client giving up does not fail the
	// others, but a wait for another instance's refresh keeps to this
	// login's deadline.
	detached := context.WithoutCancel(ctx)
	waitBy, _ := ctx.Deadline()
	for {
		ch := m.group.DoChan(key, func() (any, error) { return m.fetch(detached, key, mailbox, waitBy) })
		select {
		case r := <-ch:
			// The flight kept an earlier login's deadline: ask again with
			// ours. Judged by the deadlines, not by ctx.Err(): at the
			// deadline the flight's timer and ctx's race, and a login
			// whose deadline had just passed would start a flight that
			// fails at once for every login that joins it.
			var lw *lockWaitError
			if errors.As(r.Err, &lw) && lw.laterThan(waitBy) && ctx.Err() == nil {
				continue
			}
			if r.Err != nil {
				return "", r.Err
			}
			return r.Val.(string), nil
		case <-ctx.Done():
			return "", fmt.Errorf("%w: %w", ErrTransient, ctx.Err())
		}
	}
}

// Invalidate drops token from the cache after the upstream refused it,
// unless a newer token has replaced it already, and from the shared store
// so that no instance hands it out again.
func (m *Manager) Invalidate(mailbox, token string) {
	mailbox = canonical(mailbox)
	key := m.key(mailbox)
	m.update(key, func(e entry) entry {
		if e.access == token {
			e.access = ""
		}
		e.refused = token
		return e
	})
	if key == appKey || m.cfg == nil {
		return // app tokens are per instance: nothing shared to forget
	}
	if err := m.store.ForgetAccess(m.ProviderName(), mailbox, token); err != nil {
		m.log.Warn("oauth: forget shared access token", "user", mailbox, "err", err)
	}
}

// Forget drops everything cached for mailbox (access token, a rotated
// refresh token not yet saved, a refused one), so that after an unlink the
// next login goes to the store and finds no grant instead of using an
// access token that stays valid for up to an hour. In the app flow the
// token is shared by all mailboxes and is kept.
func (m *Manager) Forget(mailbox string) {
	if key := m.key(canonical(mailbox)); key != appKey {
		m.cache.Delete(key)
	}
}

// fetch runs inside the singleflight for key.
func (m *Manager) fetch(ctx context.Context, key, mailbox string, waitBy time.Time) (any, error) {
	if tok := m.cached(key); tok != "" { // a flight that just ended
		return tok, nil
	}
	ctx, cancel := context.WithTimeout(m.httpCtx(ctx), flightTimeout)
	defer cancel()
	if m.cfg != nil {
		return m.refresh(ctx, key, mailbox, waitBy)
	}
	start := time.Now()
	tok, err := m.retry(ctx, func() (*oauth2.Token, error) { return m.appToken(ctx, mailbox) })
	if err != nil {
		return nil, m.told(start, m.failed(key, mailbox, "", err))
	}
	m.put(key, tok, "")
	m.told(start, nil)
	return tok.AccessToken, nil
}

func (m *Manager) appToken(ctx context.Context, mailbox string) (*oauth2.Token, error) {
	if m.cc != nil {
		return m.cc.Token(ctx)
	}
	cfg := *m.jwt
	cfg.Subject = mailbox // domain-wide delegation: act as the mailbox
	return cfg.TokenSource(ctx).Token()
}

func (m *Manager) put(key string, tok *oauth2.Token, pendingRT string) {
	m.putToken(key, tok.AccessToken, m.refreshAt(tok), store.Token{Refresh: pendingRT})
}

// putToken caches access until refreshAt, keeping what the upstream refused.
func (m *Manager) putToken(key, access string, refreshAt time.Time, pending store.Token) {
	m.update(key, func(e entry) entry {
		return entry{access: access, refreshAt: refreshAt, pending: pending,
			saveAfter: m.now().Add(saveRetry), refused: e.refused}
	})
}

// refreshAt is when a cached token should be replaced.
func (m *Manager) refreshAt(tok *oauth2.Token) time.Time {
	return m.replaceAt(m.expiry(tok))
}

// expiry is when tok stops working by the provider's word, within reason.
// A lifetime in the past (a negative expires_in, or one so large that the
// oauth2 package's Expiry overflowed) counts as none: taken as it is, the
// token would be refreshed again at every login.
func (m *Manager) expiry(tok *oauth2.Token) time.Time {
	var life time.Duration
	switch {
	case tok.ExpiresIn > 0:
		life = time.Duration(tok.ExpiresIn) * time.Second
	case !tok.Expiry.IsZero():
		life = time.Until(tok.Expiry)
	}
	if life <= 0 {
		life = defaultLifetime
	}
	return m.now().Add(min(life, maxLifetime))
}

// replaceAt is when a token expiring at expiry should be replaced: the
// early-refresh margin before, or half way for short-lived tokens.
func (m *Manager) replaceAt(expiry time.Time) time.Time {
	life := expiry.Sub(m.now())
	if life > 2*earlyRefresh {
		return expiry.Add(-earlyRefresh)
	}
	return m.now().Add(life / 2)
}

// told tells Options.OnToken of one token request to the provider (its
// retries included), which began at start and ended with err (from
// failed), and returns err. The duration is wall time, not Options.Now.
func (m *Manager) told(start time.Time, err error) error {
	if m.onToken != nil {
		m.onToken(tokenResult(err), time.Since(start))
	}
	return err
}

// tokenResult names err for OnToken. ErrConfig is tested before
// ErrTransient, which it also matches.
func tokenResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrRelink):
		return "relink"
	case errors.Is(err, ErrConfig):
		return "config"
	}
	return "transient"
}
