package mailstack

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/textproto"
	"strings"
	"testing"

	"mailgate/internal/fakeidp"
)

// pop3Conn is a raw POP3 client.
type pop3Conn struct {
	t    testing.TB
	conn net.Conn
	*textproto.Conn
}

func dialPOP3(t testing.TB, s *Stack, addr string, implicit bool) *pop3Conn {
	t.Helper()
	c := &pop3Conn{t: t, conn: dial(t, s, addr, implicit)}
	c.Conn = textproto.NewConn(c.conn)
	if g := c.line(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("POP3 greeting %q", g)
	}
	return c
}

func (c *pop3Conn) line() string {
	c.t.Helper()
	l, err := c.ReadLine()
	if err != nil {
		c.t.Fatalf("POP3 read: %v", err)
	}
	return l
}

// cmd sends a line and returns the first reply line.
func (c *pop3Conn) cmd(format string, args ...any) string {
	c.t.Helper()
	if err := c.PrintfLine(format, args...); err != nil {
		c.t.Fatalf("POP3 write: %v", err)
	}
	return c.line()
}

// must sends a line and fails unless the reply starts with prefix.
func (c *pop3Conn) must(prefix, format string, args ...any) string {
	c.t.Helper()
	l := c.cmd(format, args...)
	if !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("%s: %q, want %q...", strings.Fields(format)[0], l, prefix)
	}
	return l
}

// multi reads a multi-line response body (RFC 1939 section 3), undoing
// dot-stuffing, with CRLF line ends.
func (c *pop3Conn) multi() []byte {
	c.t.Helper()
	b, err := c.ReadDotBytes()
	if err != nil {
		c.t.Fatalf("POP3 multi-line read: %v", err)
	}
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

// stls upgrades the connection (RFC 2595 section 4).
func (c *pop3Conn) stls(s *Stack) {
	c.t.Helper()
	c.must("+OK", "STLS")
	c.conn = tls.Client(c.conn, tlsConfig(s))
	c.Conn = textproto.NewConn(c.conn)
}

// TestPOP3 proves Dovecot's pop3 service behaves like Exchange Online's:
// OAuth2 only (XOAUTH2 inline or after "+ ", OAUTHBEARER), TLS first, the
// XOAUTH2 failure dance, and deletions only at QUIT. Tokens come from the
// fake identity provider through its introspection endpoint.
func TestPOP3(t *testing.T) {
	t.Parallel()
	idp, err := fakeidp.NewServer(&fakeidp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	s := StartForTest(t, idp.IntrospectURL())

	const user = "pop-rcpt@example.com"
	msg := testMessage("pop")
	lc := dialSMTP(t, s, s.LMTP, false)
	lc.must(250, "LHLO client.test")
	lc.send("sender@example.com", user, msg)
	waitDelivered(t, s.Maildir(user))
	token := idp.MintAccessToken(user)

	// retr checks the delivered message byte for byte (the dot-stuffed line
	// included) and returns its UIDL.
	retr := func(t *testing.T, c *pop3Conn) string {
		t.Helper()
		c.must("+OK 1 ", "STAT")
		c.must("+OK", "RETR 1")
		added, ok := bytes.CutSuffix(c.multi(), []byte(msg))
		if !ok {
			t.Fatalf("RETR 1 does not end with the message delivered")
		}
		checkHeaderBlock(t, added)
		return strings.Fields(c.must("+OK 1 ", "UIDL 1"))[2]
	}
	var uidl string
	for _, tc := range []struct {
		name     string
		implicit bool
		login    func(c *pop3Conn)
	}{
		{"pop3s xoauth2 inline", true, func(c *pop3Conn) {
			c.must("+OK", "AUTH XOAUTH2 %s", xoauth2(user, token))
		}},
		{"pop3s xoauth2 after continuation", true, func(c *pop3Conn) {
			// Exchange Online's form: the command alone, then the response.
			c.must("+", "AUTH XOAUTH2")
			c.must("+OK", "%s", xoauth2(user, token))
		}},
		{"pop3s oauthbearer", true, func(c *pop3Conn) {
			c.must("+OK", "AUTH OAUTHBEARER %s", oauthbearer(user, token))
		}},
		{"stls oauthbearer after continuation", false, func(c *pop3Conn) {
			c.stls(s)
			c.must("+", "AUTH OAUTHBEARER")
			c.must("+OK", "%s", oauthbearer(user, token))
		}},
		{"stls xoauth2", false, func(c *pop3Conn) {
			c.stls(s)
			c.must("+OK", "AUTH XOAUTH2 %s", xoauth2(user, token))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := s.POP3()
			if tc.implicit {
				addr = s.POP3S()
			}
			c := dialPOP3(t, s, addr, tc.implicit)
			tc.login(c)
			u := retr(t, c)
			if uidl != "" && u != uidl {
				t.Errorf("UIDL %q, was %q in an earlier session", u, uidl)
			}
			uidl = u
			c.must("+OK", "QUIT")
		})
	}

	t.Run("capabilities and refusals before tls", func(t *testing.T) {
		c := dialPOP3(t, s, s.POP3(), false)
		c.must("+OK", "CAPA")
		if caps := string(c.multi()); !strings.Contains(caps, "STLS\r\n") {
			t.Errorf("CAPA before STLS lacks STLS: %q", caps)
		}
		c.must("-ERR", "AUTH XOAUTH2 %s", xoauth2(user, token))
		c.stls(s)
		c.must("+OK", "CAPA")
		if caps := string(c.multi()); !strings.Contains(caps, "SASL XOAUTH2 OAUTHBEARER") {
			t.Errorf("CAPA after STLS: %q", caps)
		}
		c.must("-ERR", "AUTH PLAIN %s", plain(user, token))
		c.cmd("USER %s", user)
		c.must("-ERR", "PASS %s", token)
	})
	t.Run("xoauth2 refused token", func(t *testing.T) {
		c := dialPOP3(t, s, s.POP3S(), true)
		checkChallenge(t, c.cmd("AUTH XOAUTH2 %s", xoauth2(user, "not-a-token")), "+ ")
		c.must("-ERR [AUTH]", "")
	})
	t.Run("token of another mailbox", func(t *testing.T) {
		c := dialPOP3(t, s, s.POP3S(), true)
		other := idp.MintAccessToken("mallory@example.com")
		checkChallenge(t, c.cmd("AUTH XOAUTH2 %s", xoauth2(user, other)), "+ ")
		c.must("-ERR [AUTH]", "")
	})
	t.Run("dele without quit keeps, with quit deletes", func(t *testing.T) {
		c := dialPOP3(t, s, s.POP3S(), true)
		c.must("+OK", "AUTH XOAUTH2 %s", xoauth2(user, token))
		c.must("+OK", "DELE 1")
		c.Close()
		c = dialPOP3(t, s, s.POP3S(), true)
		c.must("+OK", "AUTH XOAUTH2 %s", xoauth2(user, token))
		c.must("+OK 1 ", "STAT")
		c.must("+OK", "DELE 1")
		c.must("+OK", "QUIT")
		c = dialPOP3(t, s, s.POP3S(), true)
		c.must("+OK", "AUTH XOAUTH2 %s", xoauth2(user, token))
		c.must("+OK 0 ", "STAT")
	})
}

func plain(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
}
