package imap

import (
	"bufio"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// The shared login step (proxy.Gate) and lifecycle (proxy.Front), seen from
// IMAP clients.

// TestLockoutAcrossSpellings: once a mailbox is locked, padded and
// Unicode-white-space spellings of its name are refused unchecked too.
func TestLockoutAcrossSpellings(t *testing.T) {
	h := newHardEnv(t, proxytest.QuickThrottle(proxy.ThrottleOptions{MaxFailures: 100, MaxMailboxFailures: 3}), nil)
	for i := range 3 {
		h.from(fmt.Sprintf("203.0.113.%d", i+1)).cmd("LOGIN ann@example.com wrong")
	}
	before := h.auth.calls.Load()
	for i, user := range []string{`"ann@example.com"`, `" ann@example.com"`, "\"ann@example.com\t\"",
		`"ANN@Example.com"`, "\"\u00a0ann@example.com\"", "\"ann@example.com\u3000\""} {
		c := h.from(fmt.Sprintf("192.0.2.%d", i+1))
		if r := c.cmd("LOGIN %s good", user); r != replyUnavailable {
			t.Errorf("LOGIN %s while the mailbox is locked: %q, want UNAVAILABLE", user, r)
		}
	}
	if n := h.auth.calls.Load() - before; n != 0 {
		t.Fatalf("%d password checks while the mailbox was locked, want none", n)
	}
}

// TestRevokeDuringUpstreamLogin: a password revoked while its login waits
// for the upstream fails that login, and no relayed session remains.
func TestRevokeDuringUpstreamLogin(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, nil)
	hold := make(chan struct{})
	e.verifier.mu.Lock()
	e.verifier.hold, e.verifier.entered = hold, make(chan struct{}, 1)
	e.verifier.mu.Unlock()
	defer close(hold)
	nc := e.dial()
	nc.SetDeadline(time.Now().Add(20 * time.Second)) // hang guard
	br := bufio.NewReader(nc)
	expectLine(t, br, "* OK ")
	fmt.Fprintf(nc, "a LOGIN ann@example.com good\r\n")
	<-e.verifier.entered // the upstream is in AUTHENTICATE
	if n := e.sessions.ClosePassword("pw-ann@example.com"); n != 1 {
		t.Fatalf("ClosePassword ended %d sessions, want the one logging in", n)
	}
	expectLine(t, br, "a "+replyFailed)
	fmt.Fprintf(nc, "b SELECT INBOX\r\n")
	expectLine(t, br, "b BAD ") // still before login: nothing is relayed
	waitSessions(t, e.sessions, 0)
}

// TestExpiryEndsIdleSession: an IDLE session ends when its app password
// expires.
func TestExpiryEndsIdleSession(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, nil)
	nc := e.dial()
	br := bufio.NewReader(nc)
	expectLine(t, br, "* OK ")
	fmt.Fprintf(nc, "a LOGIN ann@example.com expiring\r\nb SELECT INBOX\r\n")
	expectLine(t, br, "a OK ")
	for line := ""; !strings.HasPrefix(line, "b OK "); {
		var err error
		if line, err = br.ReadString('\n'); err != nil { // SELECT's untagged data, then its OK
			t.Fatal(err)
		}
	}
	fmt.Fprintf(nc, "c IDLE\r\n")
	expectLine(t, br, "+ ")
	waitClosed(t, nc, br)
	waitSessions(t, e.sessions, 0)
}

// TestPanicClosesOneConnection: a panic while serving one client is logged
// and closes that connection; the server goes on.
func TestPanicClosesOneConnection(t *testing.T) {
	logs := &proxytest.LogBuffer{}
	e := newEnv(t, proxy.TLSNone, func(o *testOptions) { o.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	other := e.loginClient("bob@example.com", nil)
	nc := e.dial()
	br := bufio.NewReader(nc)
	expectLine(t, br, "* OK ")
	fmt.Fprintf(nc, "a LOGIN ann@example.com panic\r\n")
	waitClosed(t, nc, br)
	if err := other.Noop().Wait(); err != nil {
		t.Fatalf("other session after the panic: %v", err)
	}
	e.loginClient("carol@example.com", nil)
	if out := logs.String(); !strings.Contains(out, `level=ERROR msg="panic serving connection; closed it" proto=imap remote=127.0.0.1 panic="injected by the test"`) {
		t.Fatalf("log:\n%s", out)
	}
}

// TestSilentFlood: silent connections from two addresses fill the total;
// a client that logs in still gets in (the oldest silent ones make room),
// and a logged-in session is never dropped.
func TestSilentFlood(t *testing.T) {
	h := newHardEnv(t, nil, proxy.NewLimits(&proxy.LimitsOptions{MaxConns: 100, ConnsPerIP: 50}))
	first := h.from("198.51.100.7")
	if r := first.cmd("LOGIN bob@example.com good"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("first login: %q", r)
	}
	for i := range 100 {
		h.from(fmt.Sprintf("203.0.113.%d", 1+i%2)) // greeted, then silent
	}
	for range 3 {
		c := h.from("198.51.100.8")
		if r := c.cmd("LOGIN ann@example.com good"); !strings.HasPrefix(r, "OK") {
			t.Fatalf("login while silent connections fill the total: %q", r)
		}
	}
	if r := first.cmd("NOOP"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("session during the flood: %q", r)
	}
}
