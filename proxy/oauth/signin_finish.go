package oauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"mailgate/store"
)

// Finish exchanges code with the PKCE verifier (RFC 7636 section 4.5),
// verifies the ID token and that its nonce is nonce, and takes the mailbox
// from its claims (signInClaims.mailbox). AllowMailbox may refuse
// it; with a Manager it is then linked exactly as "account link" does (the
// upstream login check, then the sealed refresh token). Errors wrap
// ErrSignIn, ErrWrongMailbox (the token does not open the signed-in
// mailbox) or what AllowMailbox returned. Logs name the mailbox and the
// reason, never the code, a token or the verifier.
func (s *SignIn) Finish(ctx context.Context, code, verifier, nonce string) (*Identity, error) {
	if code == "" || verifier == "" || nonce == "" {
		return nil, s.fail("", fmt.Errorf("%w: code, PKCE verifier and nonce are required", ErrSignIn))
	}
	cfg, v, err := s.discover(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := cfg.Exchange(oidc.ClientContext(ctx, s.httpc), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, s.fail("", exchangeError(err))
	}
	id, err := s.identify(ctx, v, tok, nonce)
	if err != nil {
		return nil, s.fail("", err)
	}
	if s.opts.AllowMailbox != nil {
		if err := s.opts.AllowMailbox(id.Mailbox); err != nil {
			return nil, s.fail(id.Mailbox, fmt.Errorf("oauth: sign-in as %s refused: %w", id.Mailbox, err))
		}
	}
	if m := s.opts.Manager; m != nil {
		if err := m.LinkToken(ctx, id.Mailbox, tok); err != nil {
			return nil, s.fail(id.Mailbox, linkError(err))
		}
	}
	s.log.Info("oauth: signed in", "user", id.Mailbox, "linked", s.opts.Manager != nil, "mfa", id.MFA)
	return id, nil
}

func (s *SignIn) fail(mailbox string, err error) error {
	s.log.Warn("oauth: sign-in refused", "user", mailbox, "err", err)
	return err
}

// exchangeError reads a refused code exchange: the provider's error code
// and description (invalid_grant for a bad, used or expired code or a
// wrong verifier), never the code.
func exchangeError(err error) error {
	c, reason := classify(err)
	if c == transient {
		return fmt.Errorf("%w: %w: code exchange: %s", ErrSignIn, ErrTransient, reason)
	}
	return fmt.Errorf("%w: code exchange: %s", ErrSignIn, reason)
}

// linkError keeps ErrWrongMailbox apart, so the portal can say that the
// sign-in does not open that mailbox; every other link failure is a failed
// sign-in.
func linkError(err error) error {
	if errors.Is(err, ErrWrongMailbox) {
		return err
	}
	return fmt.Errorf("%w: link: %w", ErrSignIn, err)
}

// signInClaims are the ID token claims a sign-in reads besides those
// go-oidc checks.
type signInClaims struct {
	Email             string   `json:"email"`
	EmailVerified     any      `json:"email_verified"` // bool, or a string at some providers
	PreferredUsername string   `json:"preferred_username"`
	AuthTime          int64    `json:"auth_time"`
	AMR               []string `json:"amr"`
	Roles             []string `json:"roles"`
}

// identify verifies tok's ID token (signature, issuer, audience, expiry
// with go-oidc; the nonce here, OIDC Core 3.1.3.7 item 11) and returns who
// it names.
func (s *SignIn) identify(ctx context.Context, v *oidc.IDTokenVerifier, tok *oauth2.Token, nonce string) (*Identity, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, fmt.Errorf("%w: the provider sent no ID token (scope openid missing?)", ErrSignIn)
	}
	idt, err := v.Verify(oidc.ClientContext(ctx, s.httpc), raw)
	if err != nil {
		return nil, fmt.Errorf("%w: ID token: %w", ErrSignIn, err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, fmt.Errorf("%w: ID token nonce does not match this sign-in (replayed?)", ErrSignIn)
	}
	var c signInClaims
	if err := idt.Claims(&c); err != nil {
		return nil, fmt.Errorf("%w: ID token claims: %w", ErrSignIn, err)
	}
	mailbox, err := c.mailbox()
	if err != nil {
		return nil, err
	}
	id := &Identity{Mailbox: mailbox, Roles: c.Roles, MFA: mfa(c.AMR)}
	// Not iat: a sign-in the provider answered from its own session (single
	// sign-on) gets a new ID token without a new authentication, and
	// creating a password asks for a recent one (the portal then asks for
	// prompt=login).
	if c.AuthTime > 0 {
		id.AuthTime = time.Unix(c.AuthTime, 0)
	}
	return id, nil
}

// mailbox is the mailbox the claims name: the email claim, or, in an ID
// token without one, preferred_username (Entra ID's sign-in name, the
// UPN). An email the provider marks unverified refuses the sign-in rather
// than fall back to preferred_username: at a provider where users choose
// their own user name, that fallback would let anyone name any mailbox,
// and the app flow has no upstream login to prove it.
func (c *signInClaims) mailbox() (string, error) {
	name := c.Email
	switch {
	case c.Email == "":
		name = c.PreferredUsername
	case c.EmailVerified == false || c.EmailVerified == "false":
		return "", fmt.Errorf("%w: the provider marks the ID token's email %s unverified", ErrSignIn, c.Email)
	}
	mailbox, err := store.CanonicalMailbox(name)
	if err != nil {
		return "", fmt.Errorf("%w: ID token names no usable mailbox: %w", ErrSignIn, err)
	}
	return mailbox, nil
}

// mfa reports whether amr (RFC 8176) names a second factor: Entra ID sends
// "mfa", others the factor itself.
func mfa(amr []string) bool {
	return slices.ContainsFunc(amr, func(m string) bool {
		return slices.Contains([]string{"mfa", "otp", "hwk", "swk", "fido"}, m)
	})
}
