package oauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/oauth2"
)

// verifyMailbox makes sure the approving user owns mailbox, so that one
// person's link cannot hand another mailbox's mail to a third. An ID token
// naming the mailbox settles it. Otherwise (no ID token, or a UPN that
// differs from the mail address, common at Microsoft) VerifyMailbox decides
// by logging in upstream; without it the link is refused.
func (m *Manager) verifyMailbox(ctx context.Context, mailbox string, tok *oauth2.Token) error {
	names, err := idTokenNames(tok)
	if err != nil {
		return err
	}
	for _, n := range names {
		if strings.EqualFold(n, mailbox) {
			return nil
		}
	}
	if m.verify == nil {
		if len(names) > 0 {
			return fmt.Errorf("%w: approved as %s", ErrWrongMailbox, names[0])
		}
		return fmt.Errorf("%w: no ID token names the mailbox and no upstream check is set", ErrWrongMailbox)
	}
	if err := m.verify(ctx, mailbox, tok.AccessToken); err != nil {
		return fmt.Errorf("oauth: verify mailbox upstream: %w", err)
	}
	return nil
}

// idTokenNames returns the addresses an ID token names the user by
// (preferred_username, email and upn: Microsoft sets the first and third,
// Google the second). The signature is not checked: the ID token came
// straight from the token endpoint over TLS, which OpenID Connect Core 1.0
// section 3.1.3.7 (item 6) allows in place of checking it.
func idTokenNames(tok *oauth2.Token) ([]string, error) {
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
	var c struct {
		PreferredUsername string `json:"preferred_username"`
		Email             string `json:"email"`
		UPN               string `json:"upn"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("oauth: ID token claims: %w", err)
	}
	var names []string
	for _, n := range []string{c.PreferredUsername, c.Email, c.UPN} {
		if n != "" {
			names = append(names, n)
		}
	}
	return names, nil
}
