package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"mailgate/proxy"
	"mailgate/proxy/oauth"
	"mailgate/store"
)

// authenticator checks app passwords against the store for the proxies.
type authenticator struct {
	store   *store.Store
	domains atomic.Pointer[[]string] // accounts.domains; empty = any; replaced at reload
}

func newAuthenticator(st *store.Store, domains []string) *authenticator {
	a := &authenticator{store: st}
	a.setDomains(domains)
	return a
}

func (a *authenticator) setDomains(domains []string) { a.domains.Store(&domains) }

var _ proxy.Authenticator = (*authenticator)(nil)

func (a *authenticator) Authenticate(ctx context.Context, req *proxy.LoginRequest) (*proxy.Identity, error) {
	remote := ""
	if req.Remote.IsValid() {
		remote = req.Remote.String()
	}
	// The domain is checked after Verify so that a refused domain costs
	// the same time as a wrong password.
	p, err := a.store.Verify(req.Username, req.Password, req.Proto, remote)
	switch {
	case errors.Is(err, store.ErrAuthFailed):
		return nil, proxy.ErrAuthFailed
	case err != nil:
		return nil, fmt.Errorf("%w: %w", proxy.ErrUnavailable, err)
	case !a.domainAllowed(p.Mailbox):
		return nil, fmt.Errorf("%w: domain of %s not in accounts.domains", proxy.ErrAuthFailed, p.Mailbox)
	}
	return &proxy.Identity{Mailbox: p.Mailbox, PasswordID: p.ID}, nil
}

func (a *authenticator) domainAllowed(mailbox string) bool {
	_, domain, _ := strings.Cut(mailbox, "@")
	domains := *a.domains.Load()
	return len(domains) == 0 || slices.Contains(domains, domain)
}

// tokenSource maps the OAuth manager's errors onto the proxies' two kinds.
type tokenSource struct {
	m *oauth.Manager
}

var _ proxy.TokenSource = tokenSource{}

func (t tokenSource) Token(ctx context.Context, mailbox string) (string, error) {
	tok, err := t.m.Token(ctx, mailbox)
	switch {
	case err == nil:
		return tok, nil
	case errors.Is(err, oauth.ErrRelink):
		return "", fmt.Errorf("%w: %w", proxy.ErrAuthFailed, err)
	}
	return "", fmt.Errorf("%w: %w", proxy.ErrUnavailable, err)
}

func (t tokenSource) Invalidate(mailbox, token string) { t.m.Invalidate(mailbox, token) }

// mailboxKey is the canonical form of a mailbox address, as the store and
// the session tracker hold it.
func mailboxKey(m string) string { return strings.ToLower(strings.TrimSpace(m)) }
