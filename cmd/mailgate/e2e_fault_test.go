package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"mailgate/internal/fakeidp"
	"mailgate/internal/mailstack"
)

// waitClosed waits until the server has ended a client's connection.
func waitClosed(t *testing.T, c *imapclient.Client, what string) {
	t.Helper()
	select {
	case <-c.Closed():
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: the client's connection is still open after 30s", what)
	}
}

// TestE2EUpstreamStopped stops the IMAP upstream under a relayed session.
// The client sees its connection end; the daemon keeps serving: the admin
// socket answers, SMTP (upstream on a second stack) still delivers, and a
// new IMAP login gets a clean NO [UNAVAILABLE].
func TestE2EUpstreamStopped(t *testing.T) {
	t.Parallel()
	idp, err := fakeidp.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	mailgateBinary(t)
	imapStack := mailstack.StartForTest(t, idp.IntrospectURL())
	smtpStack := mailstack.StartForTest(t, idp.IntrospectURL())
	e := newE2EWith(t, idp, imapStack, e2eOpts{smtpStack: smtpStack})
	const user = "stopped@example.com"
	pass := e.user(user)
	c := e.loginIMAP(user, pass, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := imapStack.Stop(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, c, "IMAP upstream stopped")

	if out := e.mustCLI("password", "list", user); !strings.Contains(out, user) {
		t.Errorf("password list after the upstream died:\n%s", out)
	}
	if err := e.sendSMTP(user, pass, user, user, e2eMessage("after-stop", user)); err != nil {
		t.Fatalf("SMTP through the other listener after the IMAP upstream died: %v", err)
	}
	waitMaildir(t, smtpStack.Maildir(user), 1)
	if code := e.imapLoginCode(user, pass); code != imap.ResponseCodeUnavailable {
		t.Fatalf("login with the upstream down: NO [%s], want UNAVAILABLE", code)
	}
}

// TestE2EUpstreamUntrusted: mailgate is configured without the upstream's
// CA. It refuses to log in over an unverified connection (NO [UNAVAILABLE],
// 454 4.7.0) and its log says why.
func TestE2EUpstreamUntrusted(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	const user = "untrusted@example.com"
	// A link is proven by an upstream login (issue 13), so link while the
	// CA is trusted, then restart without it.
	pass := e.user(user)
	e.opts.noCAFile = true
	e.writeConfig()
	e.restart()
	if code := e.imapLoginCode(user, pass); code != imap.ResponseCodeUnavailable {
		t.Fatalf("IMAP login to an untrusted upstream: NO [%s], want UNAVAILABLE", code)
	}
	e.d.waitLog(t, `"proto":"imap"`, "login failed", "certificate signed by unknown authority")
	if code, enh := e.smtpAuthCode(user, pass); code != 454 || enh != (smtp.EnhancedCode{4, 7, 0}) {
		t.Fatalf("SMTP AUTH to an untrusted upstream: %d %v, want 454 4.7.0", code, enh)
	}
	e.d.waitLog(t, `"proto":"smtp"`, "certificate signed by unknown authority")
	if strings.Contains(e.d.logText(), pass) {
		t.Error("the daemon log contains an app password")
	}
}

// TestE2EProviderDown: the identity provider is down and mailgate has no
// cached token (fresh daemon). Logins fail as "try later" (NO [UNAVAILABLE],
// 454 4.7.0), the grant is kept, and logins work again once it is back.
func TestE2EProviderDown(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	const user = "idpdown@example.com"
	pass := e.user(user)
	e.restart() // cold token cache
	if err := e.idp.SetDown(true); err != nil {
		t.Fatal(err)
	}
	if code := e.imapLoginCode(user, pass); code != imap.ResponseCodeUnavailable {
		t.Fatalf("IMAP login with the provider down: NO [%s], want UNAVAILABLE", code)
	}
	if code, enh := e.smtpAuthCode(user, pass); code != 454 || enh != (smtp.EnhancedCode{4, 7, 0}) {
		t.Fatalf("SMTP AUTH with the provider down: %d %v, want 454 4.7.0", code, enh)
	}
	if a := e.account(user); !a.Linked || a.NeedsRelink {
		t.Fatalf("an outage changed the account: %+v", a)
	}
	if err := e.idp.SetDown(false); err != nil {
		t.Fatal(err)
	}
	if code := e.imapLoginCode(user, pass); code != "" {
		t.Fatalf("login after the provider came back: NO [%s]", code)
	}
}

// TestE2EPasswordRevoke revokes an app password with the CLI while a
// session that logged in with it is live: that session ends, a session of
// the same mailbox with another password keeps working.
func TestE2EPasswordRevoke(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	const user = "revoke@example.com"
	e.mustLink(user)
	pass, id := e.appPassword(user)
	keep, _ := e.appPassword(user)
	c := e.loginIMAP(user, pass, nil)
	other := e.loginIMAP(user, keep, nil)
	for _, cl := range []*imapclient.Client{c, other} {
		if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	out := e.mustCLI("password", "revoke", user, id)
	if !strings.Contains(out, "1 live session(s) closed") {
		t.Errorf("password revoke:\n%s", out)
	}
	waitClosed(t, c, "password revoked")
	if err := other.Noop().Wait(); err != nil {
		t.Fatalf("session with the other password: %v", err)
	}
	if code := e.imapLoginCode(user, pass); code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("login with the revoked password: NO [%s], want AUTHENTICATIONFAILED", code)
	}
}

// TestE2EIntrospectionDown: the upstream cannot check tokens (Dovecot's
// introspection endpoint fails) while mailgate still gets tokens. Dovecot
// answers NO [UNAVAILABLE] / 454 4.7.0; mailgate must pass that on as "try
// later", not as a wrong password, and must not burn a refresh on it.
func TestE2EIntrospectionDown(t *testing.T) {
	t.Parallel()
	idp, err := fakeidp.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	var down atomic.Bool
	target, _ := url.Parse(idp.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "introspection backend down", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	mailgateBinary(t)
	e := newE2EWith(t, idp, mailstack.StartForTest(t, front.URL+"/introspect"), e2eOpts{})
	const user = "introspect@example.com"
	pass := e.user(user)
	if code := e.imapLoginCode(user, pass); code != "" {
		t.Fatalf("first login: NO [%s]", code)
	}
	before := idp.Refreshes(user)
	down.Store(true)
	if code := e.imapLoginCode(user, pass); code != imap.ResponseCodeUnavailable {
		t.Fatalf("IMAP login while the upstream cannot check tokens: NO [%s], want UNAVAILABLE", code)
	}
	if code, enh := e.smtpAuthCode(user, pass); code != 454 || enh != (smtp.EnhancedCode{4, 7, 0}) {
		t.Fatalf("SMTP AUTH while the upstream cannot check tokens: %d %v, want 454 4.7.0", code, enh)
	}
	if got := idp.Refreshes(user); got != before {
		t.Errorf("%d refreshes for an upstream outage, want none", got-before)
	}
	down.Store(false)
	if code := e.imapLoginCode(user, pass); code != "" {
		t.Fatalf("login after the outage: NO [%s]", code)
	}
}

// TestE2ESMTPUpstreamStopped stops the submission upstream after the
// client authenticated: the client gets a 4xx ("try later", so it keeps
// the message queued), never a 5xx bounce or a hang.
func TestE2ESMTPUpstreamStopped(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	const user = "smtpstop@example.com"
	pass := e.user(user)
	c, err := smtp.DialStartTLS(e.smtp, e.tls)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		t.Fatal(err)
	}
	if err := e.stack.Stop(); err != nil {
		t.Fatal(err)
	}
	err = c.SendMail(user, []string{user}, strings.NewReader(e2eMessage("stopped", user)))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code/100 != 4 {
		t.Fatalf("send with the upstream stopped: %v, want a 4xx reply", err)
	}
}
