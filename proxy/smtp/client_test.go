package smtp

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/textproto"
	"testing"
	"time"

	"mailgate/proxy"
)

// client is a raw SMTP client for conversation tests.
type client struct {
	t    *testing.T
	conn net.Conn
	tp   *textproto.Conn
}

// dial connects to the proxy's listener for mode and reads the greeting.
func (e *env) dial(mode proxy.TLSMode) *client {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.addrs[mode])
	if err != nil {
		e.t.Fatal(err)
	}
	if mode == proxy.TLSImplicit {
		conn = tls.Client(conn, e.clientTC)
	}
	c := &client{t: e.t, conn: conn, tp: textproto.NewConn(conn)}
	e.t.Cleanup(func() { conn.Close() })
	c.expect("220 mx.test ESMTP Service Ready")
	return c
}

// login dials the plaintext (secure by configuration) listener and
// authenticates as alice.
func (e *env) login() *client {
	e.t.Helper()
	c := e.dial(proxy.TLSNone)
	c.ehlo()
	c.cmd("AUTH PLAIN "+b64("\x00"+alice+"\x00"+alicePass), "235 2.0.0 Authentication succeeded")
	return c
}

func (c *client) send(line string) {
	c.t.Helper()
	c.conn.SetDeadline(time.Now().Add(time.Minute))
	if err := c.tp.PrintfLine("%s", line); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

// line reads one line.
func (c *client) line() string {
	c.t.Helper()
	c.conn.SetDeadline(time.Now().Add(time.Minute))
	line, err := c.tp.ReadLine()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return line
}

// reply reads one reply, all of its lines.
func (c *client) reply() []string {
	c.t.Helper()
	c.conn.SetDeadline(time.Now().Add(time.Minute))
	var lines []string
	for {
		line, err := c.tp.ReadLine()
		if err != nil {
			c.t.Fatalf("read reply (after %q): %v", lines, err)
		}
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return lines
		}
	}
}

// expect reads one reply and compares its last line.
func (c *client) expect(want string) {
	c.t.Helper()
	lines := c.reply()
	if got := lines[len(lines)-1]; got != want {
		c.t.Fatalf("reply = %q, want last line %q", lines, want)
	}
}

func (c *client) cmd(line, want string) {
	c.t.Helper()
	c.send(line)
	c.expect(want)
}

func (c *client) ehlo() []string {
	c.t.Helper()
	c.send("EHLO client.test")
	return c.reply()
}

// starttls upgrades the connection after a 220.
func (c *client) starttls(cfg *tls.Config) {
	c.t.Helper()
	c.cmd("STARTTLS", "220 2.0.0 Ready to start TLS")
	c.handshake(cfg)
}

// handshake starts TLS on the connection.
func (c *client) handshake(cfg *tls.Config) {
	c.t.Helper()
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn = tc
	c.tp = textproto.NewConn(tc)
}

// expectClosed reads until the server closes the connection.
func (c *client) expectClosed() []string {
	c.t.Helper()
	c.conn.SetDeadline(time.Now().Add(time.Minute))
	var lines []string
	for {
		line, err := c.tp.ReadLine()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("connection still open after %q", lines)
			}
			return lines
		}
		lines = append(lines, line)
	}
}

// sendData sends the DATA command and a message (with CRLF lines, not yet
// dot-stuffed) and expects want as the final reply.
func (c *client) sendData(msg, want string) {
	c.t.Helper()
	c.cmd("DATA", "354 Go ahead. End your data with <CR><LF>.<CR><LF>")
	w := c.tp.DotWriter()
	if _, err := io.WriteString(w, msg); err != nil {
		c.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		c.t.Fatal(err)
	}
	c.expect(want)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
