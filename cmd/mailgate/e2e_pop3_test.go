package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mailgate/internal/fakeidp"
	"mailgate/internal/mailstack"
	"mailgate/internal/testenv"
)

// authFailed is the one answer to every failed POP3 login (issue 17).
const authFailed = "-ERR [AUTH] Authentication failed"

// pop3E2E is an e2e daemon with a pop3 section: POP3S and STLS listeners
// in front of Dovecot's pop3 service.
type pop3E2E struct {
	*e2e
	pop3s, pop3 string // mailgate's POP3 listeners: implicit TLS and STLS
}

// newPOP3E2E starts an identity provider, a mail stack and a daemon with
// POP3 on.
func newPOP3E2E(t *testing.T, opts e2eOpts) *pop3E2E {
	t.Helper()
	if err := mailstack.Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	mailgateBinary(t)
	idp, err := fakeidp.NewServer(opts.idp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	return newPOP3E2EWith(t, idp, mailstack.StartForTest(t, idp.IntrospectURL()), opts)
}

// newPOP3E2EWith is newE2EWith with a pop3 section added to the config;
// its upstream is Dovecot's POP3S, with the IMAP upstream's mechanism.
func newPOP3E2EWith(t *testing.T, idp *fakeidp.Server, stack *mailstack.Stack, opts e2eOpts) *pop3E2E {
	t.Helper()
	e := &e2e{t: t, opts: opts, idp: idp, stack: stack, dir: t.TempDir()}
	e.ca, e.tls = writeCert(t, e.dir)
	e.writeConfig()
	mech := opts.mechanism
	if mech == "" {
		mech = "xoauth2"
	}
	section := fmt.Sprintf(`pop3:
  listen:
    - { address: "127.0.0.1:0", tls: implicit }
    - { address: "127.0.0.1:0", tls: starttls }
  upstream: { address: %q, tls: implicit, mechanism: %s, ca_file: %q }
`, stack.POP3S(), mech, stack.CAFile)
	f, err := os.OpenFile(e.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(section); err != nil {
		t.Fatal(err)
	}
	f.Close()
	e.d = startDaemon(t, e.cfg, e.env())
	addrs := e.d.listeners(t, 6)
	e.imaps, e.imap = addrs["imap/implicit"], addrs["imap/starttls"]
	e.smtps, e.smtp = addrs["smtp/implicit"], addrs["smtp/starttls"]
	return &pop3E2E{e2e: e, pop3s: addrs["pop3/implicit"], pop3: addrs["pop3/starttls"]}
}

// deliver puts msg into user's mailbox through Dovecot's LMTP, which is
// synchronous: the message is there when it returns.
func (p *pop3E2E) deliver(user, msg string) {
	p.t.Helper()
	conn, err := net.Dial("tcp", p.stack.LMTP)
	if err != nil {
		p.t.Fatal(err)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		p.t.Fatal(err)
	}
	if err := c.SendMail("sender@example.com", []string{user}, strings.NewReader(msg)); err != nil {
		p.t.Fatalf("LMTP delivery to %s: %v", user, err)
	}
	c.Quit()
}

// count is the number of messages in user's Maildir.
func (p *pop3E2E) count(user string) int {
	a, _ := filepath.Glob(filepath.Join(p.stack.Maildir(user), "new", "*"))
	b, _ := filepath.Glob(filepath.Join(p.stack.Maildir(user), "cur", "*"))
	return len(a) + len(b)
}

// checkPOP3Mechanism finds Dovecot's record of the mechanism mailgate used
// for user's POP3 login.
func checkPOP3Mechanism(t *testing.T, s *mailstack.Stack, user, mech string) {
	t.Helper()
	re := regexp.MustCompile(`pop3-login: Info: Login: user=<` + regexp.QuoteMeta(user) + `>, method=` + strings.ToUpper(mech) + `\b`)
	b, err := os.ReadFile(filepath.Join(s.Dir, "dovecot.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !re.Match(b) {
		t.Errorf("dovecot.log has no line matching %s; lines naming the user:\n%s", re, linesWith(b, user))
	}
}

// TestE2EPOP3 logs in through mailgate's POP3 listeners to Dovecot's pop3
// with both upstream mechanisms: USER/PASS over POP3S, AUTH PLAIN with an
// initial response and after the "+" continuation over both listeners,
// the STLS listener refusing a login before TLS and discarding commands
// pipelined behind STLS, STAT/LIST/UIDL/TOP/RETR
// relayed byte for byte, DELE without QUIT not applied (mailgate never
// sends QUIT for the client) and DELE + QUIT deleting upstream.
func TestE2EPOP3(t *testing.T) {
	t.Parallel()
	idp, err := fakeidp.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	mailgateBinary(t)
	stack := mailstack.StartForTest(t, idp.IntrospectURL())
	for _, mech := range []string{"xoauth2", "oauthbearer"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			p := newPOP3E2EWith(t, idp, stack, e2eOpts{mechanism: mech})
			user := "pop-" + mech + "@example.com"
			pass := p.user(user)
			sent := []string{e2eMessage("pop1-"+mech, user), e2eMessage("pop2-"+mech, user)}
			for _, m := range sent {
				p.deliver(user, m)
			}
			testPOP3Session(t, p, user, pass, sent)
			checkPOP3Mechanism(t, stack, user, mech)
		})
	}
}

func testPOP3Session(t *testing.T, p *pop3E2E, user, pass string, sent []string) {
	// Before TLS on the STLS listener: STLS only, logins refused.
	c := &popConn{t: t}
	raw, err := net.Dial("tcp", p.pop3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	c.c, c.r = raw, bufio.NewReader(raw)
	c.ok(c.line())
	if r := c.cmd("USER " + user); !strings.HasPrefix(r, "-ERR") || !strings.Contains(r, "STLS") {
		t.Errorf("USER before STLS: %q, want -ERR naming STLS", r)
	}
	// Bytes sent after STLS in the same packet are discarded, not read as
	// commands after the handshake (RFC 2595 section 4; the STARTTLS
	// command injection class): the handshake and the session work.
	c.must("STLS\r\nUSER " + user + "\r\nPASS " + pass)
	tc := tls.Client(raw, p.tls)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake after pipelined STLS: %v", err)
	}
	c.c, c.r = tc, bufio.NewReader(tc)
	if r := c.cmd("STAT"); !strings.HasPrefix(r, "-ERR") {
		t.Fatalf("STAT after pipelined STLS USER PASS: %q, want -ERR (not logged in)", r)
	}
	c.login(user, pass)
	c.must("QUIT")
	tc.Close()

	// USER/PASS over POP3S; the session is Dovecot's from +OK on.
	c = p.dialPOP3(p.pop3s, false)
	c.login(user, pass)
	if r := c.must("STAT"); !strings.HasPrefix(r, "+OK 2 ") {
		t.Errorf("STAT: %q, want 2 messages", r)
	}
	c.must("LIST")
	if l := strings.Split(strings.TrimSpace(string(c.multi())), "\r\n"); len(l) != 2 {
		t.Errorf("LIST: %q", l)
	}
	c.must("UIDL")
	if l := strings.Split(strings.TrimSpace(string(c.multi())), "\r\n"); len(l) != 2 {
		t.Errorf("UIDL: %q", l)
	}
	for i, m := range sent {
		checkDelivered(t, c.retr(i+1), m)
	}
	c.must("TOP 1 0")
	if top := c.multi(); !bytes.Contains(top, []byte("Subject: e2e pop1-")) || bytes.Contains(top, []byte("Hello over")) {
		t.Errorf("TOP 1 0: %q", top)
	}
	// DELE, then the client vanishes: nothing is deleted.
	c.must("DELE 1")
	c.c.Close()
	time.Sleep(200 * time.Millisecond) // Dovecot notices the close; it must not expunge

	// AUTH PLAIN, initial response, over STLS.
	c = p.dialPOP3(p.pop3, true)
	c.must("AUTH PLAIN " + plainResp(user, pass))
	if r := c.must("STAT"); !strings.HasPrefix(r, "+OK 2 ") {
		t.Fatalf("STAT after DELE without QUIT: %q, want both messages kept", r)
	}
	c.must("QUIT")

	// AUTH PLAIN after the continuation, over both listeners; the second
	// deletes message 1 with DELE + QUIT.
	for _, stls := range []bool{true, false} {
		addr := p.pop3s
		if stls {
			addr = p.pop3
		}
		c = p.dialPOP3(addr, stls)
		if r := c.cmd("AUTH PLAIN"); !strings.HasPrefix(r, "+") || strings.HasPrefix(r, "+OK") {
			t.Fatalf("AUTH PLAIN: %q, want a continuation", r)
		}
		c.must(plainResp(user, pass))
		if !stls {
			c.must("DELE 1")
		}
		c.must("QUIT")
	}
	eventually(t, "DELE + QUIT to delete message 1 upstream", func() bool { return p.count(user) == 1 })
	c = p.dialPOP3(p.pop3s, false)
	c.login(user, pass)
	checkDelivered(t, c.retr(1), sent[1])
	c.must("QUIT")
}

// TestE2EPOP3Large RETRs a 30 MB message through mailgate byte for byte.
func TestE2EPOP3Large(t *testing.T) {
	t.Parallel()
	p := newPOP3E2E(t, e2eOpts{})
	const user = "pop-large@example.com"
	pass := p.user(user)
	var b strings.Builder
	b.WriteString(e2eMessage("pop-large", user))
	line := strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789", 2) + "\r\n"
	for b.Len() < 30<<20 {
		b.WriteString(line)
		b.WriteString(".a dot-stuffed line\r\n")
	}
	sent := b.String()
	p.deliver(user, sent)
	c := p.dialPOP3(p.pop3s, false)
	c.login(user, pass)
	t0 := time.Now()
	got := c.retr(1)
	t.Logf("RETR of %d bytes in %v", len(got), time.Since(t0).Round(time.Millisecond))
	checkDelivered(t, got, sent)
	c.must("QUIT")
	c.c.Close()
	// One log line for the session, with what it relayed.
	logLine := p.d.waitLog(t, `"msg":"session ended"`, `"proto":"pop3"`, user)
	var rec struct {
		BytesOut int64 `json:"bytes_out"`
	}
	if err := json.Unmarshal([]byte(logLine), &rec); err != nil || rec.BytesOut < int64(len(sent)) {
		t.Errorf("session log line: %v: %s", err, logLine)
	}
}

// TestE2EPOP3Refused: a wrong password, an unknown mailbox and a password
// without the pop3 scope all get exactly -ERR [AUTH] Authentication
// failed; a password with the pop3 scope logs in.
func TestE2EPOP3Refused(t *testing.T) {
	t.Parallel()
	p := newPOP3E2E(t, e2eOpts{})
	const user = "pop-scope@example.com"
	p.mustLink(user)
	scoped := func(scope string) string {
		out := p.mustCLI("password", "create", "-json", "-name", scope+"-only", "-scope", scope, user)
		var pw struct{ Password string }
		if err := json.Unmarshal([]byte(out), &pw); err != nil || pw.Password == "" {
			t.Fatalf("password create -scope %s: %v: %q", scope, err, out)
		}
		return pw.Password
	}
	c := p.dialPOP3(p.pop3s, false)
	c.login(user, scoped("pop3"))
	c.must("QUIT")
	for _, tc := range []struct{ name, user, pass string }{
		{"imap-only password", user, scoped("imap")},
		{"wrong password", user, "wrongwrongwrongwrong"},
	} {
		c := p.dialPOP3(p.pop3, true)
		c.must("USER " + tc.user)
		if r := c.cmd("PASS " + tc.pass); r != authFailed {
			t.Errorf("%s: PASS: %q, want %q", tc.name, r, authFailed)
		}
	}
}

// TestE2EPOP3Revoke: "password revoke" ends a live POP3 session; its
// uncommitted DELE is not applied, a session with another password keeps
// working, and the revoked password is refused.
func TestE2EPOP3Revoke(t *testing.T) {
	t.Parallel()
	p := newPOP3E2E(t, e2eOpts{})
	const user = "pop-revoke@example.com"
	p.mustLink(user)
	pass, id := p.appPassword(user)
	keep, _ := p.appPassword(user)
	p.deliver(user, e2eMessage("pop-revoke", user))
	c := p.dialPOP3(p.pop3s, false)
	c.login(user, pass)
	c.must("DELE 1")
	other := p.dialPOP3(p.pop3, true)
	other.login(user, keep)
	out := p.mustCLI("password", "revoke", user, id)
	if !strings.Contains(out, "1 live session(s) closed") {
		t.Errorf("password revoke:\n%s", out)
	}
	if !c.closed() {
		t.Fatal("the POP3 session of the revoked password is still open")
	}
	other.must("NOOP")
	other.must("QUIT")
	if n := p.count(user); n != 1 {
		t.Errorf("%d messages after the revoked session's DELE, want 1 (no QUIT was sent for it)", n)
	}
	c = p.dialPOP3(p.pop3s, false)
	c.must("USER " + user)
	if r := c.cmd("PASS " + pass); r != authFailed {
		t.Errorf("PASS with the revoked password: %q, want %q", r, authFailed)
	}
}

// TestE2EPOP3Shutdown: SIGTERM ends a live POP3 session without sending
// QUIT upstream for it, so its DELE is not applied (RFC 1939 section 6).
func TestE2EPOP3Shutdown(t *testing.T) {
	t.Parallel()
	p := newPOP3E2E(t, e2eOpts{})
	const user = "pop-shutdown@example.com"
	pass := p.user(user)
	p.deliver(user, e2eMessage("pop-shutdown", user))
	c := p.dialPOP3(p.pop3, true)
	c.login(user, pass)
	c.must("DELE 1")
	p.d.stop(t)
	if !c.closed() {
		t.Fatal("the POP3 session is still open after the daemon stopped")
	}
	if n := p.count(user); n != 1 {
		t.Errorf("%d messages after shutdown ended a session with DELE 1, want 1", n)
	}
}
