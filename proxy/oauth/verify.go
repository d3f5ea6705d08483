package oauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/oauth2"
)

// verifyMailbox makes sure the token opens mailbox, so that one person's
// link cannot hand another mailbox's mail to a third. The ID token is only
// a hint: in Entra ID a user's own tenant admin can set email and
// preferred_username to any address (the "nOAuth" pattern), so a claim
// naming the mailbox proves nothing by itself. What proves the link is an
// upstream login as the mailbox with the token (VerifyMailbox), made for
// every link; without it every link is refused. Before that login the ID
// token may refuse the link: a tid outside AllowedTenants, or an email
// claim naming another address while no claim names the mailbox (the admin
// signed in as the wrong user). A sign-in name (preferred_username, upn)
// that differs from the mail address is common at Microsoft and refuses
// nothing.
func (m *Manager) verifyMailbox(ctx context.Context, mailbox string, tok *oauth2.Token) error {
	c, err := parseIDToken(tok)
	if err != nil {
		return err
	}
	if err := m.checkTenant(c); err != nil {
		return err
	}
	if c != nil && c.Email != "" && !c.names(mailbox) {
		return fmt.Errorf("%w: signed in as %s", ErrWrongMailbox, c.Email)
	}
	if m.verify == nil {
		return fmt.Errorf("%w: no upstream login is set to prove that the token opens the mailbox", ErrUnverified)
	}
	if err := m.verify(ctx, mailbox, tok.AccessToken); err != nil {
		return fmt.Errorf("oauth: verify mailbox upstream: %w", err)
	}
	return nil
}

// checkTenant refuses an ID token from a directory outside AllowedTenants,
// when that list is set. The tid claim is Entra ID's own, not one a tenant
// admin can set.
func (m *Manager) checkTenant(c *idClaims) error {
	switch {
	case len(m.allowedTenants) == 0:
		return nil
	case c == nil || c.TID == "":
		return fmt.Errorf("%w: the provider sent no ID token with a tid claim", ErrTenant)
	case !slices.Contains(m.allowedTenants, strings.ToLower(c.TID)):
		return fmt.Errorf("%w: signed in from tenant %s", ErrTenant, c.TID)
	}
	return nil
}

// idClaims are the claims of an ID token that linking reads: the addresses
// it names the user by (Microsoft sets preferred_username and upn, and
// email when the user has a mail address; Google sets email) and Entra ID's
// tenant ID.
type idClaims struct {
	PreferredUsername string `json:"preferred_username"`
	Email             string `json:"email"`
	UPN               string `json:"upn"`
	TID               string `json:"tid"`
}

// names reports whether any address claim is mailbox.
func (c *idClaims) names(mailbox string) bool {
	for _, n := range []string{c.PreferredUsername, c.Email, c.UPN} {
		if n != "" && strings.EqualFold(strings.TrimSpace(n), mailbox) {
			return true
		}
	}
	return false
}

// parseIDToken returns the claims of tok's ID token, or nil when there is
// none. The signature is not checked: the ID token came straight from the
// token endpoint over TLS, which OpenID Connect Core 1.0 section 3.1.3.7
// (item 6) allows in place of checking it.
func parseIDToken(tok *oauth2.Token) (*idClaims, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, nil
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, errors.New("oauth: malformed ID token")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, fmt.Errorf("oauth: ID token payload: %w", err)
	}
	var c idClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("oauth: ID token claims: %w", err)
	}
	return &c, nil
}
