package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailgate/config"
)

// limitsConfig runs IMAP and SMTP behind PROXY protocol listeners, one
// connection per client address, one failed login before a lockout.
const limitsConfig = `hostname: mail.test
store: { path: state/mailgate.db }
admin: { socket: state/admin.sock }
imap:
  listen: [{ address: "127.0.0.1:0", tls: none, proxy_protocol: true }]
  upstream: { address: "127.0.0.1:1", tls: implicit }
smtp:
  listen: [{ address: "127.0.0.1:0", tls: none, proxy_protocol: true }]
  upstream: { address: "127.0.0.1:1", tls: starttls }
oauth:
  provider: generic
  client_id: test
  token_url: http://127.0.0.1:1/token
  device_authorization_url: http://127.0.0.1:1/device
limits: { connections_per_ip: 1, max_failures: 1, failure_delay: 1ms, max_failure_delay: 1ms }
proxy_protocol: { trusted: [127.0.0.0/8] }
`

// TestDaemonLimitsWiring: the daemon wraps proxy_protocol listeners and
// hands one Throttle and one Limits to both protocols.
func TestDaemonLimitsWiring(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mailgate.yaml")
	if err := os.WriteFile(file, []byte(limitsConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "state"), 0o700)
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	t.Cleanup(func() { d.stop() })
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	imapAddr, smtpAddr := d.bound[0].addr.String(), d.bound[1].addr.String()

	if got := greet(t, imapAddr, ""); got != "" {
		t.Fatalf("IMAP without PROXY header answered %q", got)
	}
	c := dialProxied(t, imapAddr, "203.0.113.1")
	if !strings.HasPrefix(c.line(), "* OK") {
		t.Fatal("no IMAP greeting through the PROXY listener")
	}
	// The limit is shared: SMTP from the same client address is refused.
	if got := greet(t, smtpAddr, "203.0.113.1"); !strings.HasPrefix(got, "421 4.7.0") {
		t.Fatalf("SMTP from an address at its limit: %q", got)
	}
	c.send("a1 LOGIN ann@example.com wrong")
	if got := c.line(); !strings.HasPrefix(got, "a1 NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("wrong password: %q", got)
	}
	c.send("a2 LOGIN ann@example.com wrong")
	if got := c.line(); !strings.HasPrefix(got, "a2 NO [UNAVAILABLE]") {
		t.Fatalf("after max_failures: %q", got)
	}
	// The throttle is shared too: SMTP from another connection of the
	// locked address (the IMAP one closed) is refused unchecked.
	c.nc.Close()
	for range 2000 {
		s := dialProxied(t, smtpAddr, "203.0.113.1")
		if !strings.HasPrefix(s.line(), "220 ") {
			s.nc.Close()
			time.Sleep(5 * time.Millisecond)
			continue
		}
		s.send("EHLO x")
		for l := s.line(); strings.HasPrefix(l, "250-"); l = s.line() {
		}
		s.send("AUTH PLAIN AGFubkBleGFtcGxlLmNvbQB3cm9uZw==") // \0ann@example.com\0wrong
		if got := s.line(); !strings.HasPrefix(got, "454 4.7.0") {
			t.Fatalf("SMTP AUTH from the locked address: %q", got)
		}
		return
	}
	t.Fatal("connection slot never released")
}

type lineConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialProxied(t *testing.T, addr, client string) *lineConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second)) // hang guard only
	if client != "" {
		fmt.Fprintf(nc, "PROXY TCP4 %s 127.0.0.1 40000 1\r\n", client)
	}
	return &lineConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *lineConn) send(line string) { fmt.Fprintf(c.nc, "%s\r\n", line) }

// line returns the next line, or "" once the connection is closed.
func (c *lineConn) line() string {
	l, _ := c.br.ReadString('\n')
	return strings.TrimSuffix(l, "\r\n")
}

// greet returns the first line a new connection gets ("" if closed).
func greet(t *testing.T, addr, client string) string {
	c := dialProxied(t, addr, client)
	defer c.nc.Close()
	if client == "" {
		c.send("a1 CAPABILITY")
	}
	return c.line()
}
