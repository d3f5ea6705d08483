package main

import (
	"crypto/tls"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestE2ELinkWithoutDaemon: an admin links a mailbox and issues its app
// password before the daemon first starts (the CLI opens the store itself);
// the daemon then serves that mailbox. The address is typed in mixed case,
// as users write it, at every step.
func TestE2ELinkWithoutDaemon(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	e.d.stop(t)
	const typed = "Mixed.Case@Example.COM"
	e.mustLink(typed)
	pass, _ := e.appPassword(typed)
	e.start()
	if a := e.account(strings.ToLower(typed)); !a.Linked {
		t.Fatalf("account list: %+v", a)
	}
	c := e.loginIMAP(typed, pass, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	if err := e.sendSMTP(typed, pass, typed, typed, e2eMessage("mixed", typed)); err != nil {
		t.Fatalf("send: %v", err)
	}
	waitMaildir(t, e.stack.Maildir(typed), 1)
}

// TestE2ECertReload replaces the certificate and sends SIGHUP: live sessions go
// on, new connections get the new certificate (docs/clients.md, "Apple Mail and
// certificate changes").
func TestE2ECertReload(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	const user = "reload@example.com"
	pass := e.user(user)
	c := e.loginIMAP(user, pass, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	oldTLS := e.tls
	e.ca, e.tls = writeCert(t, e.dir) // same paths as in the config
	if err := e.d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.d.waitLog(t, `"msg":"certificate reloaded"`)
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("live session after reload: %v", err)
	}
	if nc, err := tls.Dial("tcp", e.imaps, oldTLS); err == nil {
		nc.Close()
		t.Fatal("a new connection still got the old certificate")
	}
	if code := e.imapLoginCode(user, pass); code != "" {
		t.Fatalf("login with the new certificate: NO [%s]", code)
	}
}

// TestE2EUnlink: "account unlink" ends the mailbox's live sessions and its
// app passwords stop working until it is linked again.
func TestE2EUnlink(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	const user = "unlink@example.com"
	pass := e.user(user)
	c := e.loginIMAP(user, pass, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	out := e.mustCLI("account", "unlink", user)
	if !strings.Contains(out, "1 live session(s) closed") {
		t.Errorf("account unlink:\n%s", out)
	}
	waitClosed(t, c, "mailbox unlinked")
	if code := e.imapLoginCode(user, pass); code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("login after unlink: NO [%s], want AUTHENTICATIONFAILED", code)
	}
	e.mustLink(user)
	if code := e.imapLoginCode(user, pass); code != "" {
		t.Fatalf("login after linking again: NO [%s]", code)
	}
}

// TestE2EOutlookStart plays the start of the new Outlook and Apple Mail against
// real Dovecot: ID before login (docs/clients.md, "Apple Mail sends ID before
// login"), then CAPABILITY, ID, NAMESPACE and ENABLE after it, all answered OK;
// the capabilities after login are the upstream's, without AUTH=
// (docs/clients.md, "Clients want capabilities in the greeting" and "Upstreams
// differ in capabilities").
func TestE2EOutlookStart(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	const user = "outlook@example.com"
	pass := e.user(user)
	c := e.dialIMAP(e.imaps, false, nil)
	id := &imap.IDData{Name: "Microsoft Outlook", Version: "16.0"}
	if _, err := c.ID(id).Wait(); err != nil {
		t.Fatalf("ID before login: %v", err)
	}
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []imap.Cap{imap.CapIdle, imap.CapMove, imap.CapNamespace} {
		if !caps.Has(want) {
			t.Errorf("capabilities after login lack %s: %v", want, caps)
		}
	}
	for cp := range caps {
		if strings.HasPrefix(string(cp), "AUTH=") {
			t.Errorf("capabilities after login include %s", cp)
		}
	}
	if _, err := c.ID(id).Wait(); err != nil {
		t.Fatalf("ID after login: %v", err)
	}
	if _, err := c.Namespace().Wait(); err != nil {
		t.Fatalf("NAMESPACE: %v", err)
	}
	if _, err := c.Enable(imap.CapUTF8Accept).Wait(); err != nil {
		t.Fatalf("ENABLE: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT: %v", err)
	}
}

// TestE2EShutdown: SIGTERM with an idle relayed session (Outlook keeps one
// open for hours) ends that session with BYE and the daemon exits cleanly.
func TestE2EShutdown(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	const user = "shutdown@example.com"
	pass := e.user(user)
	c := e.loginIMAP(user, pass, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	e.d.stop(t) // SIGTERM; fails the test unless the exit status is 0
	waitClosed(t, c, "daemon stopped")
	e.d.waitLog(t, `"msg":"session ended"`, user)
}
