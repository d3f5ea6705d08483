package main

import (
	"crypto/tls"
	"strings"
	"syscall"
	"testing"
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

// TestE2ECertReload replaces the certificate and sends SIGHUP: live
// sessions go on, new connections get the new certificate (field note 22).
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
