package mailstack

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// newIntrospector is a tiny RFC 7662 endpoint: "good-<user>" is active for
// <user>, "down-..." gets 503 (the provider is unavailable), anything else
// is inactive.
func newIntrospector(t testing.TB) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.PostFormValue("token")
		resp := map[string]any{"active": false}
		switch {
		case r.Method != http.MethodPost:
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		case strings.HasPrefix(tok, "down-"):
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		case strings.HasPrefix(tok, "good-"):
			resp = map[string]any{"active": true, "email": strings.TrimPrefix(tok, "good-")}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func xoauth2(user, token string) string {
	return base64.StdEncoding.EncodeToString([]byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01"))
}

func oauthbearer(user, token string) string {
	return base64.StdEncoding.EncodeToString([]byte("n,a=" + user + ",\x01auth=Bearer " + token + "\x01\x01"))
}

func tlsConfig(s *Stack) *tls.Config {
	return &tls.Config{RootCAs: s.CertPool, ServerName: "localhost"}
}

// dial connects from 127.0.0.1 (the stack listens on 127.0.0.2, so Dovecot
// sees a non-local client), over TLS if implicit is set.
func dial(t testing.TB, s *Stack, addr string, implicit bool) net.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if implicit {
		c = tls.Client(c, tlsConfig(s))
	}
	c.SetDeadline(time.Now().Add(15 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// imapConn is a raw IMAP client: tagged commands, untagged lines kept.
type imapConn struct {
	t    testing.TB
	conn net.Conn
	*textproto.Conn
	tag int
}

func dialIMAP(t testing.TB, s *Stack, addr string, implicit bool) *imapConn {
	t.Helper()
	c := &imapConn{t: t, conn: dial(t, s, addr, implicit)}
	c.Conn = textproto.NewConn(c.conn)
	if g := c.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("IMAP greeting %q", g)
	}
	return c
}

func (c *imapConn) line() string {
	c.t.Helper()
	l, err := c.ReadLine()
	if err != nil {
		c.t.Fatalf("IMAP read: %v", err)
	}
	return l
}

// send writes a tagged command and returns its tag.
func (c *imapConn) send(format string, args ...any) string {
	c.t.Helper()
	c.tag++
	tag := fmt.Sprintf("a%d", c.tag)
	if err := c.PrintfLine(tag+" "+format, args...); err != nil {
		c.t.Fatalf("IMAP write: %v", err)
	}
	return tag
}

// cmd runs a command and returns the untagged lines and the tagged status
// ("OK ...", "NO ...", "BAD ...").
func (c *imapConn) cmd(format string, args ...any) (untagged []string, status string) {
	c.t.Helper()
	return c.wait(c.send(format, args...))
}

func (c *imapConn) wait(tag string) (untagged []string, status string) {
	c.t.Helper()
	for {
		l := c.line()
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return untagged, rest
		}
		untagged = append(untagged, l)
	}
}

// starttls upgrades the connection (RFC 9051 section 6.2.1).
func (c *imapConn) starttls(s *Stack) {
	c.t.Helper()
	if _, st := c.cmd("STARTTLS"); !strings.HasPrefix(st, "OK") {
		c.t.Fatalf("STARTTLS: %s", st)
	}
	c.conn = tls.Client(c.conn, tlsConfig(s))
	c.Conn = textproto.NewConn(c.conn)
}

func (c *imapConn) mustLogin(user string) {
	c.t.Helper()
	if _, st := c.cmd("AUTHENTICATE XOAUTH2 %s", xoauth2(user, "good-"+user)); !strings.HasPrefix(st, "OK") {
		c.t.Fatalf("AUTHENTICATE XOAUTH2 as %s: %s", user, st)
	}
}

// fetchFull returns message seq of INBOX byte for byte (BODY.PEEK[] is
// sent as a literal, RFC 9051 section 4.3).
func (c *imapConn) fetchFull(seq int) []byte {
	c.t.Helper()
	tag := c.send("FETCH %d BODY.PEEK[]", seq)
	l := c.line()
	var n int
	if i := strings.LastIndexByte(l, '{'); i < 0 || !strings.HasSuffix(l, "}") {
		c.t.Fatalf("FETCH: no literal in %q", l)
	} else if _, err := fmt.Sscanf(l[i:], "{%d}", &n); err != nil {
		c.t.Fatalf("FETCH literal size in %q: %v", l, err)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(c.R, msg); err != nil {
		c.t.Fatalf("FETCH literal: %v", err)
	}
	if _, st := c.wait(tag); !strings.HasPrefix(st, "OK") {
		c.t.Fatalf("FETCH: %s", st)
	}
	return msg
}
