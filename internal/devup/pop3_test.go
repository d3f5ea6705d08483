package devup

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"mailgate/proxy"
)

// startPOP3Upstream serves opts on 127.0.0.1:0, accepting a@example.com
// with the token "tok" only.
func startPOP3Upstream(t *testing.T, opts *POP3Options) (*POP3Server, string) {
	t.Helper()
	opts.Verify = smtpTestVerify
	srv := NewPOP3(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return srv, ln.Addr().String()
}

// pop3Client speaks POP3 line by line for the tests.
type pop3Client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func newPOP3Client(t *testing.T, c net.Conn) *pop3Client {
	t.Helper()
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	pc := &pop3Client{t: t, c: c, r: bufio.NewReader(c)}
	if g := pc.line(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting %q", g)
	}
	return pc
}

func dialPOP3(t *testing.T, addr string) *pop3Client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return newPOP3Client(t, c)
}

func (pc *pop3Client) line() string {
	pc.t.Helper()
	l, err := pc.r.ReadString('\n')
	if err != nil {
		pc.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// cmd sends line and returns the first reply line.
func (pc *pop3Client) cmd(line string) string {
	pc.t.Helper()
	if _, err := pc.c.Write([]byte(line + "\r\n")); err != nil {
		pc.t.Fatal(err)
	}
	return pc.line()
}

// multi reads a multi-line body up to the "." line, undoing dot-stuffing,
// and returns it with its CRLFs.
func (pc *pop3Client) multi() string {
	pc.t.Helper()
	var b strings.Builder
	for {
		l := pc.line()
		if l == "." {
			return b.String()
		}
		b.WriteString(strings.TrimPrefix(l, ".") + "\r\n")
	}
}

func (pc *pop3Client) want(line, prefix string) string {
	pc.t.Helper()
	got := pc.cmd(line)
	if !strings.HasPrefix(got, prefix) {
		pc.t.Fatalf("%s: got %q, want %q...", line, got, prefix)
	}
	return got
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func xoauth2(user, token string) string { return b64(string(proxy.XOAUTH2Response(user, token))) }

func oauthBearer(user, token string) string {
	_, ir, _ := sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: user, Token: token}).Start()
	return base64.StdEncoding.EncodeToString(ir)
}

func TestPOP3UpstreamLogin(t *testing.T) {
	srv, addr := startPOP3Upstream(t, &POP3Options{})
	for _, tc := range []struct {
		name, mech, resp string
		inline           bool
	}{
		{"xoauth2 continuation", "XOAUTH2", xoauth2("a@example.com", "tok"), false},
		{"xoauth2 inline", "XOAUTH2", xoauth2("a@example.com", "tok"), true},
		{"oauthbearer continuation", "OAUTHBEARER", oauthBearer("a@example.com", "tok"), false},
		{"oauthbearer inline", "oauthbearer", oauthBearer("a@example.com", "tok"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialPOP3(t, addr)
			c.want("USER a@example.com", "-ERR [AUTH]")
			c.want("STAT", "-ERR")
			if tc.inline {
				c.want("AUTH "+tc.mech+" "+tc.resp, "+OK")
			} else {
				if got := c.cmd("AUTH " + tc.mech); got != "+ " {
					t.Fatalf("AUTH %s: got %q, want an empty continuation", tc.mech, got)
				}
				c.want(tc.resp, "+OK")
			}
			c.want("STAT", "+OK 0 0")
			c.want("AUTH XOAUTH2", "-ERR")
		})
	}
	if n := srv.Logins(); n != 4 {
		t.Fatalf("Logins() = %d, want 4", n)
	}
}

func TestPOP3UpstreamCapa(t *testing.T) {
	_, addr := startPOP3Upstream(t, &POP3Options{})
	c := dialPOP3(t, addr)
	c.want("CAPA", "+OK")
	caps := strings.Split(c.multi(), "\r\n")
	for _, want := range []string{"TOP", "UIDL", "SASL XOAUTH2 OAUTHBEARER"} {
		if !slices.Contains(caps, want) {
			t.Errorf("CAPA %q lacks %q", caps, want)
		}
	}
	if slices.Contains(caps, "USER") || slices.Contains(caps, "STLS") {
		t.Errorf("CAPA %q offers USER or STLS", caps)
	}
}

func TestPOP3UpstreamRefusedToken(t *testing.T) {
	srv, addr := startPOP3Upstream(t, &POP3Options{})
	for _, tc := range []struct{ mech, resp, ack string }{
		{"XOAUTH2", xoauth2("a@example.com", "bad"), ""},
		{"OAUTHBEARER", oauthBearer("a@example.com", "bad"), b64("\x01")},
		{"OAUTHBEARER", oauthBearer("a@example.com", "bad"), ""}, // a client that sends no 0x01
		{"XOAUTH2", xoauth2("b@example.com", "tok"), "*"},
	} {
		c := dialPOP3(t, addr)
		ch := c.want("AUTH "+tc.mech+" "+tc.resp, "+ ")
		js, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(ch, "+ "))
		if err != nil || !bytes.Contains(js, []byte(`"status"`)) {
			t.Fatalf("%s: error challenge %q (%q, %v), want JSON", tc.mech, ch, js, err)
		}
		if got := c.cmd(tc.ack); got != "-ERR [AUTH] Authentication failed" {
			t.Fatalf("%s: got %q after the challenge", tc.mech, got)
		}
		c.want("STAT", "-ERR")
	}
	c := dialPOP3(t, addr)
	c.want("AUTH XOAUTH2 !!!", "-ERR")
	c.want("AUTH PLAIN "+b64("\x00a@example.com\x00tok"), "-ERR")
	c.cmd("AUTH XOAUTH2")
	c.want("*", "-ERR")
	if n := srv.Logins(); n != 0 {
		t.Fatalf("Logins() = %d, want 0", n)
	}
}

// login authenticates as a@example.com with XOAUTH2.
func (pc *pop3Client) login() {
	pc.t.Helper()
	pc.want("AUTH XOAUTH2 "+xoauth2("a@example.com", "tok"), "+OK")
}

func TestPOP3UpstreamRetrDotStuffing(t *testing.T) {
	srv, addr := startPOP3Upstream(t, &POP3Options{})
	msg := "Subject: dots\r\nX: 1\r\n\r\n.leading\r\n..two\r\n.\r\nmid . dle\r\n.\r\n"
	srv.Deliver("A@example.com", strings.NewReader(msg))
	srv.Deliver("a@example.com", strings.NewReader("Subject: lf\n\nbare\n.lf")) // stored with CRLF
	c := dialPOP3(t, addr)
	c.login()
	c.want("STAT", "+OK 2 ")
	c.want("LIST 1", "+OK 1 "+strconv.Itoa(len(msg)))
	c.want("RETR 1", "+OK")
	if got := c.multi(); got != msg {
		t.Fatalf("RETR 1 = %q, want %q", got, msg)
	}
	c.want("RETR 2", "+OK")
	if got, want := c.multi(), "Subject: lf\r\n\r\nbare\r\n.lf\r\n"; got != want {
		t.Fatalf("RETR 2 = %q, want %q", got, want)
	}
	c.want("TOP 1 1", "+OK")
	if got, want := c.multi(), "Subject: dots\r\nX: 1\r\n\r\n.leading\r\n"; got != want {
		t.Fatalf("TOP 1 1 = %q, want %q", got, want)
	}
	c.want("UIDL", "+OK")
	if u := strings.Split(c.multi(), "\r\n"); len(u) != 3 || u[0] == u[1] {
		t.Fatalf("UIDL = %q, want two distinct ids", u)
	}
	c.want("RETR 3", "-ERR")
	c.want("NOOP", "+OK")
}

func TestPOP3UpstreamDeleteOnlyAtQuit(t *testing.T) {
	srv, addr := startPOP3Upstream(t, &POP3Options{})
	for _, s := range []string{"one", "two", "three"} {
		srv.Deliver("a@example.com", strings.NewReader("Subject: "+s+"\r\n\r\n"+s+"\r\n"))
	}
	// Closed without QUIT: nothing is deleted (RFC 1939 section 6).
	c := dialPOP3(t, addr)
	c.login()
	c.want("DELE 1", "+OK")
	c.want("RETR 1", "-ERR")
	c.want("STAT", "+OK 2 ")
	c.c.Close()
	waitPOP3(t, func() bool { return slices.Contains(srv.Commands("a@example.com"), "STAT") })
	if n := len(srv.Messages("a@example.com")); n != 3 {
		t.Fatalf("%d messages after DELE without QUIT, want 3", n)
	}
	// RSET unmarks; QUIT removes what is still marked.
	c = dialPOP3(t, addr)
	c.login()
	c.want("DELE 1", "+OK")
	c.want("RSET", "+OK")
	c.want("DELE 2", "+OK")
	c.want("QUIT", "+OK")
	msgs := srv.Messages("a@example.com")
	if len(msgs) != 2 || !bytes.Contains(msgs[0], []byte("one")) || !bytes.Contains(msgs[1], []byte("three")) {
		t.Fatalf("after DELE 2 + QUIT: %q", msgs)
	}
	want := []string{"DELE 1", "RETR 1", "STAT", "DELE 1", "RSET", "DELE 2", "QUIT"}
	if got := srv.Commands("A@example.com"); !slices.Equal(got, want) {
		t.Fatalf("Commands = %q, want %q", got, want)
	}
}

func TestPOP3UpstreamCloseKeepsMessages(t *testing.T) {
	srv, addr := startPOP3Upstream(t, &POP3Options{})
	srv.Deliver("a@example.com", strings.NewReader("Subject: x\r\n\r\nx\r\n"))
	c := dialPOP3(t, addr)
	c.login()
	c.want("DELE 1", "+OK")
	srv.Close()
	if _, err := c.r.ReadString('\n'); err == nil {
		t.Fatal("connection open after Close")
	}
	if n := len(srv.Messages("a@example.com")); n != 1 {
		t.Fatalf("%d messages after Close, want 1", n)
	}
}

func TestPOP3UpstreamSTLS(t *testing.T) {
	stls, client := smtpTestTLS(t)
	_, addr := startPOP3Upstream(t, &POP3Options{TLSConfig: stls, StartTLS: true})
	c := dialPOP3(t, addr)
	c.want("CAPA", "+OK")
	if caps := c.multi(); !strings.Contains(caps, "STLS\r\n") || strings.Contains(caps, "SASL") {
		t.Fatalf("CAPA before STLS = %q, want STLS and no SASL", caps)
	}
	c.want("AUTH XOAUTH2 "+xoauth2("a@example.com", "tok"), "-ERR")
	// A command pipelined behind STLS is discarded, never answered.
	if got := c.cmd("STLS\r\nCAPA"); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("STLS: %q", got)
	}
	tc := tls.Client(c.c, client)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	c.c, c.r = tc, bufio.NewReader(tc)
	c.want("CAPA", "+OK")
	if caps := c.multi(); strings.Contains(caps, "STLS") || !strings.Contains(caps, "SASL XOAUTH2") {
		t.Fatalf("CAPA after STLS = %q", caps)
	}
	c.want("STLS", "-ERR")
	c.login()
}

func TestPOP3UpstreamImplicitTLS(t *testing.T) {
	stls, client := smtpTestTLS(t)
	_, addr := startPOP3Upstream(t, &POP3Options{TLSConfig: stls})
	tc, err := tls.Dial("tcp", addr, client)
	if err != nil {
		t.Fatal(err)
	}
	c := newPOP3Client(t, tc)
	c.want("STLS", "-ERR")
	c.login()
	c.want("QUIT", "+OK")
}

func TestPOP3UpstreamLongLine(t *testing.T) {
	_, addr := startPOP3Upstream(t, &POP3Options{})
	c := dialPOP3(t, addr)
	c.want("AUTH XOAUTH2 "+strings.Repeat("A", 70<<10), "-ERR")
}

// waitPOP3 polls cond for up to five seconds.
func waitPOP3(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("condition not met")
		}
	}
}
