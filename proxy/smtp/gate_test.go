package smtp

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// The shared login step (proxy.Gate) and lifecycle (proxy.Front), seen from
// SMTP clients.

// TestLockoutAcrossSpellings: once a mailbox is locked, padded and
// Unicode-white-space spellings of its name are refused unchecked too.
func TestLockoutAcrossSpellings(t *testing.T) {
	e, ca := newHardEnv(t, envConfig{throttle: proxytest.QuickThrottle(proxy.ThrottleOptions{MaxFailures: 100, MaxMailboxFailures: 3})})
	for i := range 3 {
		e.from(fmt.Sprintf("203.0.113.%d", i+1)).cmd(authPlain(alice, "wrong"), replyFailed)
	}
	before := ca.calls.Load()
	for i, user := range []string{alice, " " + alice, alice + "\t", strings.ToUpper(alice),
		"\u00a0" + alice, alice + "\u3000"} {
		e.from(fmt.Sprintf("192.0.2.%d", i+1)).cmd(authPlain(user, alicePass), replyTemp)
	}
	if n := ca.calls.Load() - before; n != 0 {
		t.Fatalf("%d password checks while the mailbox was locked, want none", n)
	}
}

// TestPanicClosesOneConnection: a panic while serving one client is logged
// with its stack and ends that connection with 421; others go on.
func TestPanicClosesOneConnection(t *testing.T) {
	e := newEnv(t, envConfig{wrapAuth: func(a proxy.Authenticator) proxy.Authenticator { return panicAuth{a} }})
	other := e.dial(proxy.TLSNone)
	other.ehlo()
	other.cmd(authPlain(alice, alicePass), replyOK)
	c := e.dial(proxy.TLSNone)
	c.ehlo()
	c.send(authPlain(alice, "panic"))
	if got := c.expectClosed(); len(got) == 0 || !strings.HasPrefix(got[0], "421 ") {
		t.Fatalf("panicking session got %q, want 421 and close", got)
	}
	sendSimple(other, "bob@example.com", "Subject: after\r\n\r\nstill here\r\n")
	// go-smtp closes the connection before it logs the panic: wait for it.
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(e.logs.String(), "panic serving"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no panic log line:\n%s", e.logs)
		}
	}
	if !strings.Contains(e.logs.String(), "level=ERROR") {
		t.Fatalf("the panic is not logged at ERROR:\n%s", e.logs)
	}
}

// panicAuth panics for the password "panic".
type panicAuth struct{ proxy.Authenticator }

func (a panicAuth) Authenticate(ctx context.Context, req *proxy.LoginRequest) (*proxy.Identity, error) {
	if req.Password == "panic" {
		panic("injected by the test")
	}
	return a.Authenticator.Authenticate(ctx, req)
}

// TestRevokeDuringUpstreamLogin: a password revoked while its AUTH waits for
// the upstream fails that AUTH with 535, and no session remains.
func TestRevokeDuringUpstreamLogin(t *testing.T) {
	e := newEnv(t, envConfig{})
	hold := make(chan struct{})
	e.upHold.Store(&hold)
	defer close(hold)
	c := e.dial(proxy.TLSNone)
	c.ehlo()
	c.send(authPlain(alice, alicePass))
	<-e.upEntered // the upstream is in AUTH
	if n := e.sessions.ClosePassword(aliceID); n != 1 {
		t.Fatalf("ClosePassword ended %d sessions, want the one logging in", n)
	}
	c.expect(replyFailed)
	c.cmd("MAIL FROM:<"+alice+">", "530 5.7.0 Authentication required")
	waitSessions(t, e.sessions, 0)
}

// TestExpiryEndsSession: an SMTP session ends when its app password
// expires.
func TestExpiryEndsSession(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.dial(proxy.TLSNone)
	c.ehlo()
	c.cmd(authPlain(alice, "expiring"), replyOK)
	c.expectClosed()
	waitSessions(t, e.sessions, 0)
}

// waitSessions waits until the registry holds n sessions (a hang guard,
// not a timing assertion).
func waitSessions(t *testing.T, r *proxy.Registry, n int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); r.Len() != n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions registered, want %d", r.Len(), n)
		}
	}
}
