package mailstack

import (
	"crypto/tls"
	"net"
	"net/textproto"
	"strings"
	"testing"
)

// smtpConn is a raw SMTP client.
type smtpConn struct {
	t    testing.TB
	conn net.Conn
	*textproto.Conn
}

func dialSMTP(t testing.TB, s *Stack, addr string, implicit bool) *smtpConn {
	t.Helper()
	c := &smtpConn{t: t, conn: dial(t, s, addr, implicit)}
	c.Conn = textproto.NewConn(c.conn)
	c.expect(220)
	return c
}

// expect reads a (possibly multi-line) reply and fails unless its code is
// want.
func (c *smtpConn) expect(want int) string {
	c.t.Helper()
	code, msg, err := c.ReadResponse(0)
	if err != nil && code == 0 {
		c.t.Fatalf("SMTP read: %v", err)
	}
	if code != want {
		c.t.Fatalf("SMTP reply %d %q, want %d", code, msg, want)
	}
	return msg
}

// cmd sends a line and returns the reply code and text.
func (c *smtpConn) cmd(format string, args ...any) (int, string) {
	c.t.Helper()
	if err := c.PrintfLine(format, args...); err != nil {
		c.t.Fatalf("SMTP write: %v", err)
	}
	code, msg, err := c.ReadResponse(0)
	if err != nil && code == 0 {
		c.t.Fatalf("SMTP read: %v", err)
	}
	return code, msg
}

// must sends a line and fails unless the reply code is want.
func (c *smtpConn) must(want int, format string, args ...any) string {
	c.t.Helper()
	code, msg := c.cmd(format, args...)
	if code != want {
		c.t.Fatalf("%s: %d %q, want %d", strings.Fields(format)[0], code, msg, want)
	}
	return msg
}

// starttls upgrades the connection and says EHLO again (RFC 3207 section
// 4.2: the client must discard what it knew before TLS).
func (c *smtpConn) starttls(s *Stack) string {
	c.t.Helper()
	c.must(220, "STARTTLS")
	c.conn = tls.Client(c.conn, tlsConfig(s))
	c.Conn = textproto.NewConn(c.conn)
	return c.must(250, "EHLO client.test")
}

// send submits msg (lines joined with CRLF; DotWriter stuffs dots).
func (c *smtpConn) send(from, to, msg string) {
	c.t.Helper()
	c.must(250, "MAIL FROM:<%s>", from)
	c.must(250, "RCPT TO:<%s>", to)
	c.must(354, "DATA")
	w := c.DotWriter()
	if _, err := w.Write([]byte(msg)); err != nil {
		c.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		c.t.Fatal(err)
	}
	c.expect(250)
}
