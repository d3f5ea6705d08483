// Package backend adapts the store and the OAuth token manager to the two
// interfaces the protocol front ends see, proxy.Authenticator and
// proxy.TokenSource, so that proxy/imap and proxy/smtp import neither. The
// daemon and the benchmark wire the same adapters.
package backend

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

// Authenticator checks app passwords against the store.
type Authenticator struct {
	store   *store.Store
	domains atomic.Pointer[[]string] // accounts.domains; empty = any; replaced at reload
}

var _ proxy.Authenticator = (*Authenticator)(nil)

// NewAuthenticator returns an Authenticator that accepts mailboxes in
// domains only (any when empty).
func NewAuthenticator(st *store.Store, domains []string) *Authenticator {
	a := &Authenticator{store: st}
	a.SetDomains(domains)
	return a
}

// SetDomains replaces the allowed domains (config reload).
func (a *Authenticator) SetDomains(domains []string) { a.domains.Store(&domains) }

// Domains returns the allowed domains now, so that the admin operations
// follow a reload too.
func (a *Authenticator) Domains() []string { return *a.domains.Load() }

// Authenticate implements proxy.Authenticator.
func (a *Authenticator) Authenticate(ctx context.Context, req *proxy.LoginRequest) (*proxy.Identity, error) {
	remote := ""
	if req.Remote.IsValid() {
		remote = req.Remote.String()
	}
	// The domain is checked after Verify so that a refused domain costs
	// the same time as a wrong password.
	p, err := a.store.Verify(req.Username, req.Password, req.Proto, remote)
	switch {
	case errors.Is(err, store.ErrUnavailable):
		// Checked first: a store that cannot answer must never look like a
		// wrong password, which makes Outlook ask the user for a new one
		// (docs/clients.md) and would count toward the lockout.
		return nil, fmt.Errorf("%w: %w", proxy.ErrUnavailable, err)
	case errors.Is(err, store.ErrAuthFailed):
		return nil, proxy.ErrAuthFailed
	case err != nil:
		return nil, fmt.Errorf("%w: %w", proxy.ErrUnavailable, err)
	case !a.domainAllowed(p.Mailbox):
		return nil, fmt.Errorf("%w: domain of %s not in accounts.domains", proxy.ErrAuthFailed, p.Mailbox)
	}
	return &proxy.Identity{Mailbox: p.Mailbox, PasswordID: p.ID, Expires: p.Expires}, nil
}

func (a *Authenticator) domainAllowed(mailbox string) bool {
	_, domain, _ := strings.Cut(mailbox, "@")
	domains := a.Domains()
	return len(domains) == 0 || slices.Contains(domains, domain)
}

// Tokens hands out the OAuth manager's tokens, mapping its errors onto the
// proxies' two kinds: a mailbox that must be re-linked is an authentication
// failure, anything else (provider down, slow, misconfigured) is temporary.
type Tokens struct {
	m *oauth.Manager
}

var _ proxy.TokenSource = Tokens{}

// NewTokens returns the TokenSource for m.
func NewTokens(m *oauth.Manager) Tokens { return Tokens{m: m} }

// Token implements proxy.TokenSource.
func (t Tokens) Token(ctx context.Context, mailbox string) (string, error) {
	tok, err := t.m.Token(ctx, mailbox)
	switch {
	case err == nil:
		return tok, nil
	case errors.Is(err, store.ErrUnavailable):
		// The grant could not be read: not a reason to re-link.
		return "", fmt.Errorf("%w: %w", proxy.ErrUnavailable, err)
	case errors.Is(err, oauth.ErrRelink):
		return "", fmt.Errorf("%w: %w", proxy.ErrAuthFailed, err)
	}
	return "", fmt.Errorf("%w: %w", proxy.ErrUnavailable, err)
}

// Invalidate implements proxy.TokenSource.
func (t Tokens) Invalidate(mailbox, token string) { t.m.Invalidate(mailbox, token) }
