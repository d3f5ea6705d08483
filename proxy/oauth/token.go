package oauth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/oauth2"
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
	// flightTimeout bounds one refresh, retries included. The flight is
	// detached from the first caller's context so that a client giving up
	// does not fail the others waiting on the same refresh.
	flightTimeout = 30 * time.Second
	maxAttempts   = 3
)

// entry is the cached state of one key (a mailbox, or the shared app key).
// Entries are immutable; updates replace them.
type entry struct {
	access    string
	refreshAt time.Time
	pendingRT string // rotated refresh token the store failed to save
	deadRT    string // refresh token the provider refused: never sent again
	deadErr   error
}

// appKey is the cache key of a client-credentials token: one per client
// and tenant, shared by all mailboxes.
const appKey = "\x00app"

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
	if e := m.entry(key); e != nil && e.access != "" && m.now().Before(e.refreshAt) {
		return e.access
	}
	return ""
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
	detached := context.WithoutCancel(ctx)
	ch := m.group.DoChan(key, func() (any, error) { return m.fetch(detached, key, mailbox) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", fmt.Errorf("%w: %w", ErrTransient, ctx.Err())
	}
}

// Invalidate drops token from the cache after the upstream refused it,
// unless a newer token has replaced it already.
func (m *Manager) Invalidate(mailbox, token string) {
	key := m.key(canonical(mailbox))
	e := m.entry(key)
	if e == nil || e.access != token {
		return
	}
	n := *e
	n.access = ""
	m.cache.CompareAndSwap(key, e, &n)
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
func (m *Manager) fetch(ctx context.Context, key, mailbox string) (any, error) {
	if tok := m.cached(key); tok != "" { // a flight that just ended
		return tok, nil
	}
	ctx, cancel := context.WithTimeout(m.httpCtx(ctx), flightTimeout)
	defer cancel()
	if m.cfg != nil {
		return m.refresh(ctx, key, mailbox)
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

// refresh redeems the mailbox's refresh token and saves the new one at once:
// Microsoft rotates refresh tokens on use (docs/clients.md, "Refresh tokens
// rotate and expire").
func (m *Manager) refresh(ctx context.Context, key, mailbox string) (any, error) {
	e := m.entry(key)
	rt := ""
	if e != nil {
		rt = e.pendingRT
	}
	if rt == "" {
		var err error
		if rt, err = m.store.LoadRefreshToken(m.ProviderName(), mailbox); err != nil {
			return nil, fmt.Errorf("%w: load refresh token: %w", ErrTransient, err)
		}
	}
	if rt == "" {
		return nil, fmt.Errorf("%w: %s is not linked", ErrRelink, mailbox)
	}
	if e != nil && e.deadRT == rt { // refused before: spare the provider
		return nil, e.deadErr
	}
	start := time.Now()
	tok, err := m.retry(ctx, func() (*oauth2.Token, error) {
		return m.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	})
	if err != nil {
		return nil, m.told(start, m.failed(key, mailbox, rt, err))
	}
	m.saveRefreshed(key, mailbox, tok, rt)
	m.told(start, nil)
	return tok.AccessToken, nil
}

// save stores the refresh token (which also records the time of this
// refresh) and caches the access token. If the store fails, the rotated
// token is kept in memory for the next refresh.
func (m *Manager) save(key, mailbox string, tok *oauth2.Token, oldRT string) {
	if tok.RefreshToken == "" { // not rotated (RFC 6749 section 6)
		tok.RefreshToken = oldRT
	}
	pending := ""
	if err := m.store.SaveRefreshToken(m.ProviderName(), mailbox, tok.RefreshToken); err != nil {
		m.log.Error("oauth: save refresh token", "user", mailbox, "err", err)
		pending = tok.RefreshToken
	}
	m.put(key, tok, pending)
}

func (m *Manager) put(key string, tok *oauth2.Token, pendingRT string) {
	m.cache.Store(key, &entry{access: tok.AccessToken, refreshAt: m.refreshAt(tok),
		pendingRT: pendingRT})
}

// refreshAt is when a cached token should be replaced.
func (m *Manager) refreshAt(tok *oauth2.Token) time.Time {
	life := defaultLifetime
	switch {
	case tok.ExpiresIn > 0:
		life = time.Duration(tok.ExpiresIn) * time.Second
	case !tok.Expiry.IsZero():
		life = time.Until(tok.Expiry)
	}
	if life > 2*earlyRefresh {
		return m.now().Add(life - earlyRefresh)
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
