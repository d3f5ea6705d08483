package imap

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"mailgate/internal/devup"
	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// scriptedUpstream plays an upstream that go-imap's server cannot. Each
// script serves one connection, in order: pairs of an expected line from
// the proxy (prefix match, "" for none) and the raw reply.
func scriptedUpstream(t *testing.T, scripts ...[][2]string) string {
	t.Helper()
	ln := proxytest.Listen(t)
	serveScripts(t, ln, scripts...)
	return ln.Addr().String()
}

// loginVia logs in through a proxy whose upstream is addr (plaintext) and
// returns the proxy's lines after the greeting, up to the tagged reply and
// extra more.
func loginVia(t *testing.T, addr string, extra int) []string {
	t.Helper()
	e := newEnv(t, proxy.TLSNone, func(o *testOptions) {
		o.Upstream = proxy.Upstream{Address: addr, TLS: proxy.TLSNone, Mechanism: "XOAUTH2"}
	})
	nc := e.dial()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(nc)
	br.ReadString('\n')
	io.WriteString(nc, "a1 LOGIN ann@example.com good\r\n")
	var lines []string
	for len(lines) < 1+extra {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v after %q", err, lines)
		}
		lines = append(lines, strings.TrimSuffix(line, "\r\n"))
	}
	return lines
}

// Exchange Online style: no capabilities in the greeting, no SASL-IR, and the
// token accepted but the mailbox unreachable (docs/clients.md, "Authenticated
// but not connected").
func TestUpstreamAuthenticatedButNotConnected(t *testing.T) {
	addr := scriptedUpstream(t, [][2]string{
		{"", "* OK The Microsoft Exchange IMAP4 service is ready.\r\n"},
		{"m1 CAPABILITY", "* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 IDLE MOVE\r\nm1 OK CAPABILITY completed.\r\n"},
		{"m2 AUTHENTICATE XOAUTH2\r\n", "+ \r\n"},
		{base64.StdEncoding.EncodeToString(proxy.XOAUTH2Response("ann@example.com", "tok1")), "m2 OK AUTHENTICATE completed.\r\n"},
		{"m3 STATUS INBOX (MESSAGES)", "m3 BAD User is authenticated but not connected.\r\n"},
	})
	if got := loginVia(t, addr, 0); got[0] != "a1 NO [AUTHENTICATIONFAILED] Authentication failed" {
		t.Fatalf("got %q", got)
	}
}

// The capabilities come from asking after login, are filtered, and bytes
// the upstream sends right after its last OK reach the client.
func TestUpstreamCapabilitiesAndTrailingBytes(t *testing.T) {
	addr := scriptedUpstream(t, [][2]string{
		{"", "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 STARTTLS LOGINDISABLED] ready\r\n"},
		{"m1 AUTHENTICATE XOAUTH2 " + base64.StdEncoding.EncodeToString(proxy.XOAUTH2Response("ann@example.com", "tok1")),
			"m1 OK done\r\n"},
		{"m2 STATUS INBOX", "* STATUS {5}\r\nINBOX (MESSAGES 3)\r\nm2 OK STATUS completed\r\n"},
		{"m3 CAPABILITY", "* CAPABILITY IMAP4rev1 SASL-IR IDLE AUTH=PLAIN MOVE\r\nm3 OK done\r\n* 3 EXISTS\r\n"},
	})
	got := loginVia(t, addr, 1)
	if got[0] != "a1 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in" || got[1] != "* 3 EXISTS" {
		t.Fatalf("got %q", got)
	}
}

// Gmail style: the refused token gets a JSON challenge, answered with an
// empty line, then NO; the retry with a fresh token succeeds.
func TestUpstreamErrorChallengeNotRelayed(t *testing.T) {
	ir := func(tok string) string {
		return "AUTHENTICATE XOAUTH2 " + base64.StdEncoding.EncodeToString(proxy.XOAUTH2Response("ann@example.com", tok))
	}
	first := [][2]string{
		{"", "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] Gimap ready\r\n"},
		{"m1 " + ir("tok1"), "+ eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==\r\n"},
		{"\r\n", "m1 NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n"},
	}
	second := [][2]string{
		{"", "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] Gimap ready\r\n"},
		{"m1 " + ir("tok2"), "m1 OK [CAPABILITY IMAP4rev1 IDLE] ann@example.com authenticated (Success)\r\n"},
		{"m2 STATUS", "* STATUS INBOX (MESSAGES 0)\r\nm2 OK Success\r\n"},
	}
	addr := scriptedUpstream(t, first, second)
	got := loginVia(t, addr, 0)
	if got[0] != "a1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in" {
		t.Fatalf("got %q", got)
	}
}

func serveScripts(t *testing.T, ln net.Listener, scripts ...[][2]string) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for _, script := range scripts {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			playScript(t, nc, script)
		}
	}()
}

func playScript(t *testing.T, nc net.Conn, script [][2]string) {
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(nc)
	for _, step := range script {
		if step[0] != "" {
			line, err := br.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, step[0]) {
				t.Errorf("upstream got %q, %v; want %q", line, err, step[0])
				nc.Close()
				return
			}
		}
		io.WriteString(nc, step[1])
	}
	go func() { io.Copy(io.Discard, br); nc.Close() }()
}

// OAUTHBEARER upstream, on STARTTLS: the first token is refused (the error
// challenge is answered with ^A, RFC 7628), the second accepted.
func TestUpstreamOAuthBearerStartTLS(t *testing.T) {
	serverTLS, clientTLS := proxytest.TLSPair(t)
	v := &verifier{policy: "refuse-first"}
	up := devup.NewIMAP(&devup.IMAPOptions{Verify: v.verify, TLSConfig: serverTLS, StartTLS: true, Logger: proxytest.Logger(t)})
	ln := proxytest.Listen(t)
	go up.Serve(ln)
	t.Cleanup(func() { up.Close() })
	e := newEnv(t, proxy.TLSImplicit, func(o *testOptions) {
		o.Upstream = proxy.Upstream{Address: ln.Addr().String(), TLS: proxy.TLSStartTLS, Mechanism: "OAUTHBEARER", TLSConfig: clientTLS}
	})
	c := e.loginClient("ann@example.com", nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	if n := len(e.tokens.Invalidations()); n != 1 {
		t.Fatalf("Invalidate called %d times, want 1", n)
	}
}

// An upstream answering NO [UNAVAILABLE] (Gmail's "Temporary System
// Problem", Dovecot without its introspection endpoint) is down, not
// refusing the token: the client hears UNAVAILABLE, never
// AUTHENTICATIONFAILED (which makes Outlook ask for a new password), and
// the token is not thrown away for a second attempt.
func TestUpstreamUnavailableIsNotAuthFailure(t *testing.T) {
	ir := base64.StdEncoding.EncodeToString(proxy.XOAUTH2Response("ann@example.com", "tok1"))
	greet := [2]string{"", "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready\r\n"}
	for name, script := range map[string][][2]string{
		"authenticate": {greet, {"m1 AUTHENTICATE XOAUTH2 " + ir, "m1 NO [UNAVAILABLE] Temporary System Problem\r\n"}},
		"probe": {greet, {"m1 AUTHENTICATE XOAUTH2 " + ir, "m1 OK done\r\n"},
			{"m2 STATUS INBOX", "m2 NO [UNAVAILABLE] Mailbox backend down\r\n"}},
	} {
		t.Run(name, func(t *testing.T) {
			// A retry with a fresh token would meet a plain refusal here.
			retry := [][2]string{greet, {"m1 AUTHENTICATE XOAUTH2 ", "m1 NO AUTHENTICATE failed.\r\n"}}
			addr := scriptedUpstream(t, script, retry)
			if got := loginVia(t, addr, 0); got[0] != "a1 "+textUnavailable {
				t.Fatalf("got %q, want a1 %s", got, textUnavailable)
			}
		})
	}
}
