package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"mailgate/internal/fakeidp"
)

// imapLoginCode logs in over implicit TLS and returns the response code of
// a refusal ("" when the login succeeded, "(none)" for a NO without code).
func (e *e2e) imapLoginCode(user, pass string) imap.ResponseCode {
	e.t.Helper()
	c := e.dialIMAP(e.imaps, false, nil)
	defer c.Close()
	err := c.Login(user, pass).Wait()
	if err == nil {
		return ""
	}
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo {
		e.t.Fatalf("LOGIN %s: %v, want a NO", user, err)
	}
	if ie.Code == "" {
		return "(none)" // never mistaken for a successful login
	}
	return ie.Code
}

// smtpAuthCode authenticates over STARTTLS and returns the SMTP reply code
// and enhanced code of a refusal (0 when AUTH succeeded).
func (e *e2e) smtpAuthCode(user, pass string) (int, smtp.EnhancedCode) {
	e.t.Helper()
	c, err := smtp.DialStartTLS(e.smtp, e.tls)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	err = c.Auth(sasl.NewPlainClient("", user, pass))
	if err == nil {
		return 0, smtp.EnhancedCode{}
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		e.t.Fatalf("AUTH %s: %v, want an SMTP reply", user, err)
	}
	return se.Code, se.EnhancedCode
}

// TestE2ELinkVerifiedUpstream: the provider issues no ID token, so the link
// rests on the upstream XOAUTH2 login as the mailbox alone (issue 4; every
// link makes it since issue 13). The owner's approval links; another user's
// approval is refused and the mailbox stays unlinked.
func TestE2ELinkVerifiedUpstream(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{idp: &fakeidp.Options{NoIDToken: true}})
	const user, other = "owner@example.com", "mallory@example.com"
	pass := e.user(user)
	if code := e.imapLoginCode(user, pass); code != "" {
		t.Fatalf("login after a verified link: NO [%s]", code)
	}
	e.d.waitLog(t, `"msg":"mailbox linked"`, user)

	const victim = "victim@example.com"
	last, stderr, err := e.link(victim, other)
	if err == nil {
		t.Fatalf("link of %s approved by %s succeeded: %s", victim, other, last)
	}
	if !strings.Contains(stderr, "another mailbox") || !strings.Contains(stderr, "sign in as "+victim) {
		t.Errorf("link refusal does not say why:\n%s", stderr)
	}
	vpass, _ := e.appPassword(victim)
	if a := e.account(victim); a.Linked {
		t.Fatalf("refused link left %s linked: %+v", victim, a)
	}
	if code := e.imapLoginCode(victim, vpass); code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("login to the unlinked mailbox: %q, want AUTHENTICATIONFAILED", code)
	}
}

// TestE2ELinkClaimsNotTrusted: the provider issues ID tokens, and mallory
// signs in with one that names the victim, as her own tenant admin can
// arrange in Entra ID (issue 13, "nOAuth"). The claim is only a hint: the
// upstream login as the victim with mallory's token fails at Dovecot, so
// nothing is linked. The owner's own sign-in still links, proven the same
// way.
func TestE2ELinkClaimsNotTrusted(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	const victim, mallory = "victim@example.com", "mallory@example.com"
	e.idp.SetIDTokenMailbox(victim)
	last, stderr, err := e.link(victim, mallory)
	if err == nil {
		t.Fatalf("link of %s by %s with an ID token naming %s succeeded: %s", victim, mallory, victim, last)
	}
	if !strings.Contains(stderr, "upstream login as "+victim) || !strings.Contains(stderr, "sign in as "+victim) {
		t.Errorf("link refusal does not say why:\n%s", stderr)
	}
	vpass, _ := e.appPassword(victim)
	if a := e.account(victim); a.Linked {
		t.Fatalf("refused link left %s linked: %+v", victim, a)
	}
	if code := e.imapLoginCode(victim, vpass); code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("login to the unlinked mailbox: %q, want AUTHENTICATIONFAILED", code)
	}
	e.idp.SetIDTokenMailbox("")
	e.mustLink(victim)
	if code := e.imapLoginCode(victim, vpass); code != "" {
		t.Fatalf("login after the owner's link: NO [%s]", code)
	}
}

// TestE2ETokenExpired: the provider expires every access token mailgate
// holds; the next IMAP and SMTP logins refresh behind the client's back.
func TestE2ETokenExpired(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	const user = "expiry@example.com"
	pass := e.user(user)
	if code := e.imapLoginCode(user, pass); code != "" {
		t.Fatalf("first login: NO [%s]", code)
	}
	before := e.idp.Refreshes(user)
	e.idp.ExpireAccessTokens()
	c := e.loginIMAP(user, pass, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT after a refreshed login: %v", err)
	}
	if e.idp.Refreshes(user) <= before {
		t.Fatalf("no refresh after the access token expired (%d refreshes)", e.idp.Refreshes(user))
	}
	e.idp.ExpireAccessTokens()
	if err := e.sendSMTP(user, pass, user, user, e2eMessage("expired", user)); err != nil {
		t.Fatalf("send after the access token expired: %v", err)
	}
	if a := e.account(user); a.LastRefresh == nil || a.NeedsRelink {
		t.Fatalf("account after refreshes: %+v", a)
	}
}

// TestE2ETokenShortLived: access tokens live 2 s; a login after that
// refreshes before going upstream.
func TestE2ETokenShortLived(t *testing.T) {
	t.Parallel()
	const ttl = 2 * time.Second
	e := newE2E(t, e2eOpts{idp: &fakeidp.Options{AccessTTL: ttl}})
	const user = "short@example.com"
	pass := e.user(user)
	if code := e.imapLoginCode(user, pass); code != "" {
		t.Fatalf("first login: NO [%s]", code)
	}
	before := e.idp.Refreshes(user)
	time.Sleep(ttl + 500*time.Millisecond) // let the token die at the provider
	c := e.loginIMAP(user, pass, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT after a refreshed login: %v", err)
	}
	if e.idp.Refreshes(user) <= before {
		t.Fatal("login with an expired access token did not refresh")
	}
}

// TestE2ERelink: the provider revokes the refresh token (a password change
// at Microsoft). The next login fails cleanly, "account list" says the
// mailbox needs re-linking, and linking again repairs it.
func TestE2ERelink(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	const user = "revoked@example.com"
	pass := e.user(user)
	if code := e.imapLoginCode(user, pass); code != "" {
		t.Fatalf("first login: NO [%s]", code)
	}
	e.idp.RevokeRefreshTokens(user)
	e.idp.ExpireAccessTokens()
	if code := e.imapLoginCode(user, pass); code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("login with a revoked grant: NO [%s], want AUTHENTICATIONFAILED", code)
	}
	if code, enh := e.smtpAuthCode(user, pass); code != 535 || enh != (smtp.EnhancedCode{5, 7, 8}) {
		t.Fatalf("SMTP AUTH with a revoked grant: %d %v, want 535 5.7.8", code, enh)
	}
	if a := e.account(user); !a.NeedsRelink || a.Reason == "" {
		t.Fatalf("account list after revocation: %+v, want needs_relink with a reason", a)
	}
	out := e.mustCLI("account", "list")
	if !strings.Contains(out, "needs re-link") {
		t.Errorf("account list does not show the re-link:\n%s", out)
	}
	e.mustLink(user)
	if a := e.account(user); a.NeedsRelink {
		t.Fatalf("account list after re-linking: %+v", a)
	}
	if code := e.imapLoginCode(user, pass); code != "" {
		t.Fatalf("login after re-linking: NO [%s]", code)
	}
}

// TestE2EConcurrentRefresh: the provider expires the access token and an Apple
// Mail-like client opens five connections at once (docs/clients.md, "Clients
// idle long and keep several connections"). All log in, and the rotating refresh
// token is used once (docs/clients.md, "Refresh tokens rotate and expire"): a
// second use of the old one would be invalid_grant and unlink the mailbox.
func TestE2EConcurrentRefresh(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	const user = "burst@example.com"
	pass := e.user(user)
	if code := e.imapLoginCode(user, pass); code != "" {
		t.Fatalf("first login: NO [%s]", code)
	}
	before := e.idp.Refreshes(user)
	e.idp.ExpireAccessTokens()
	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() {
			c, err := imapclient.DialTLS(e.imaps, &imapclient.Options{TLSConfig: e.tls})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := c.Login(user, pass).Wait(); err != nil {
				errs <- err
				return
			}
			_, err = c.Select("INBOX", nil).Wait()
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent login: %v", err)
		}
	}
	if got := e.idp.Refreshes(user) - before; got != 1 {
		t.Errorf("%d refreshes for %d concurrent logins, want 1", got, n)
	}
	if a := e.account(user); a.NeedsRelink {
		t.Fatalf("concurrent refreshes unlinked the mailbox: %+v", a)
	}
}
