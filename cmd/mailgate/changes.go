package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"mailgate/proxy"
	"mailgate/proxy/oauth"
	"mailgate/store"
)

// resyncRetry is how long a re-check that failed (the database is still
// down, or down again) waits before the next try: short enough that
// sessions revoked during an outage end within about a second of the
// database's return, long enough that a down database costs one failed
// query a second.
const resyncRetry = time.Second

// resyncSettle is when a re-check runs a second time: a login whose
// password check read the database before a revoke that the feed missed
// may register just after the first pass listed the live sessions. Its
// query ends within the store's 5 s query timeout and it registers right
// after, so a second pass 6 s later sees it.
const resyncSettle = 6 * time.Second

// changes applies the shared store's change feed (store.Options.OnChange)
// to this daemon: a revoke, revoke-all or unlink made through any instance
// or by the CLI straight against the database ends the sessions here too.
// It goes through the registry's ClosePassword and CloseMailbox, whose
// tombstones also refuse logins that checked their password just before
// the change committed.
type changes struct {
	sessions *proxy.Registry
	log      *slog.Logger
	// delegated: mailboxes are linked one by one, so a lost link ends
	// their sessions; the app flow has no links.
	delegated bool
	store     atomic.Pointer[store.Store]   // set once Open returned; changes may come before
	oauth     atomic.Pointer[oauth.Manager] // nil until built
	resync    chan struct{}                 // one pending re-check; more coalesce
	settle    time.Duration                 // when the second pass runs; resyncSettle
}

func newChanges(sessions *proxy.Registry, delegated bool, log *slog.Logger) *changes {
	return &changes{sessions: sessions, delegated: delegated, log: log, resync: make(chan struct{}, 1),
		settle: resyncSettle}
}

// apply is the store's OnChange. It runs on the store's listener
// goroutine, so it only ends sessions (cheap) and hands re-checks to run.
func (c *changes) apply(ch store.Change) {
	switch ch.Kind {
	case store.PasswordRevoked:
		n := c.sessions.ClosePassword(ch.PasswordID)
		c.log.Debug("store change: password revoked", "user", ch.Mailbox, "password", ch.PasswordID, "sessions_closed", n)
	case store.MailboxRevoked:
		// After an unlink the passwords stay, so the cached access token
		// must go too, or it would open the mailbox for up to an hour.
		if m := c.oauth.Load(); m != nil {
			m.Forget(ch.Mailbox)
		}
		n := c.sessions.CloseMailbox(ch.Mailbox)
		c.log.Debug("store change: mailbox revoked", "user", ch.Mailbox, "sessions_closed", n)
	case store.Resync:
		select {
		case c.resync <- struct{}{}:
		default: // one is pending already: it will see this change too
		}
	}
}

// run re-checks every live session after each Resync until ctx ends,
// retrying a re-check that failed.
func (c *changes) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.resync:
		}
		for _, wait := range []time.Duration{0, c.settle} {
			if !sleep(ctx, wait) {
				return
			}
			for !c.recheck() {
				if !sleep(ctx, resyncRetry) {
					return
				}
			}
		}
	}
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// recheck ends the sessions whose password is gone or expired, or whose
// mailbox lost its link, while the feed was down (NOTIFY does not replay
// what was sent while no one listened). It reports whether it got through.
func (c *changes) recheck() bool {
	st := c.store.Load()
	if st == nil {
		return false
	}
	live := c.sessions.Live()
	linked, err := c.linked(st)
	if err != nil {
		c.log.Warn("re-check of live sessions failed; retrying", "err", err)
		return false
	}
	closed := 0
	for _, k := range live {
		if linked != nil && !linked[k.Mailbox] {
			closed += c.sessions.CloseMailbox(k.Mailbox)
			continue
		}
		ok, err := st.PasswordActive(k.Mailbox, k.PasswordID)
		if err != nil {
			c.log.Warn("re-check of live sessions failed; retrying", "err", err)
			return false
		}
		if !ok {
			closed += c.sessions.ClosePassword(k.PasswordID)
		}
	}
	c.log.Info("live sessions re-checked against the store", "checked", len(live), "sessions_closed", closed)
	return true
}

// linked returns the mailboxes with a refresh token in the delegated flow,
// and nil in the app flow, where no mailbox is linked.
func (c *changes) linked(st *store.Store) (map[string]bool, error) {
	m := c.oauth.Load()
	if m == nil || !c.delegated {
		return nil, nil
	}
	accounts, err := st.Accounts()
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(accounts))
	for _, a := range accounts {
		if a.Provider == m.ProviderName() {
			out[a.Mailbox] = true
		}
	}
	return out, nil
}
