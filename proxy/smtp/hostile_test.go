package smtp

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailgate/proxy"
)

// saslPlain is an AUTH PLAIN line with an initial response.
func saslPlain(resp string) string { return "AUTH PLAIN " + b64(resp) + "\r\n" }

const ehlo = "EHLO client.test\r\n"

// hostileCases are bad inputs sent in one write, before the greeting is read
// (so every case also pipelines before the greeting), with the replies
// expected after the greeting and the EHLO reply, each a line prefix.
// closed says the proxy must end the connection; otherwise it must still
// answer NOOP. mayReset allows a TCP reset instead of the last reply where
// the proxy closes with input unread, which the kernel answers with RST.
var hostileCases = []struct {
	name     string
	mode     proxy.TLSMode
	send     string
	want     []string
	closed   bool
	mayReset bool
	preAuth  time.Duration // Options.PreAuthTimeout, if not the default
}{
	{name: "pipelined before greeting", send: ehlo + "NOOP\r\nRSET\r\n", want: []string{"250 2.0.0 ", "250 2.0.0 "}},
	{name: "overlong line", send: ehlo + "NOOP " + strings.Repeat("x", 70000) + "\r\n",
		want: []string{"500 5.4.0 Too long line"}, closed: true, mayReset: true},
	{name: "NUL in command", send: ehlo + "NO\x00OP\r\n", want: []string{"501 5.5.2 "}},
	{name: "NUL in address", send: ehlo + "MAIL FROM:<a\x00b@example.com>\r\n", want: []string{"530 5.7.0 "}},
	{name: "invalid UTF-8 address", send: ehlo + "MAIL FROM:<\xff\xfe@example.com>\r\n", want: []string{"530 5.7.0 "}},
	{name: "invalid UTF-8 user", send: ehlo + saslPlain("\x00\xff\xfe\x00"+alicePass), want: []string{"535 5.7.8 "}},
	{name: "invalid base64 initial response", send: ehlo + "AUTH PLAIN !!!!\r\n", want: []string{"454 4.7.0 "}},
	{name: "invalid base64 response", send: ehlo + "AUTH PLAIN\r\n%%%\r\n", want: []string{"334", "454 4.7.0 "}},
	{name: "AUTH LOGIN invalid base64 user", send: ehlo + "AUTH LOGIN !!\r\n", want: []string{"454 4.7.0 "}},
	{name: "AUTH LOGIN invalid base64 password", send: ehlo + "AUTH LOGIN " + b64("u") + "\r\n!!\r\n",
		want: []string{"334 UGFzc3dvcmQ6", "454 4.7.0 "}},
	{name: "SASL PLAIN two fields", send: ehlo + saslPlain(alice+"\x00"+alicePass), want: []string{"535 5.7.8 "}},
	{name: "SASL PLAIN four fields", send: ehlo + saslPlain("\x00"+alice+"\x00"+alicePass+"\x00x"), want: []string{"535 5.7.8 "}},
	{name: "SASL PLAIN other authzid", send: ehlo + saslPlain("admin\x00"+alice+"\x00"+alicePass), want: []string{"535 5.7.8 "}},
	{name: "SASL PLAIN empty", send: ehlo + "AUTH PLAIN =\r\n", want: []string{"535 5.7.8 "}},
	{name: "AUTH cancelled", send: ehlo + "AUTH PLAIN\r\n*\r\n", want: []string{"334", "501 5.0.0 "}},
	{name: "unsupported mechanism", send: ehlo + "AUTH CRAM-MD5\r\n", want: []string{"504 5.7.4 "}},
	{name: "malformed SASL counts as failure", send: ehlo + strings.Repeat(saslPlain(alice+"\x00"+alicePass), proxy.MaxLoginFailures+1),
		want: []string{"535 ", "535 ", "535 ", "421 4.7.0 Too many authentication failures"}, closed: true},
	{name: "AUTH flood", send: ehlo + strings.Repeat(saslPlain("\x00"+alice+"\x00wrong"), proxy.MaxLoginFailures+1),
		want: []string{"535 ", "535 ", "535 ", "421 4.7.0 Too many authentication failures"}, closed: true},
	{name: "BDAT 2^63", send: ehlo + "BDAT 9223372036854775808\r\n", want: []string{"501 5.5.4 "}},
	{name: "BDAT 2^63-1 after login", send: ehlo + saslPlain("\x00"+alice+"\x00"+alicePass) +
		"MAIL FROM:<" + alice + ">\r\nRCPT TO:<bob@example.com>\r\nBDAT 9223372036854775807\r\n",
		want: []string{"235 ", "250 ", "250 ", "501 5.5.4 "}},
	{name: "SIZE 2^63-1 after login", send: ehlo + saslPlain("\x00"+alice+"\x00"+alicePass) +
		"MAIL FROM:<" + alice + "> SIZE=9223372036854775807\r\nMAIL FROM:<" + alice + "> SIZE=" + strings.Repeat("9", 30) + "\r\n",
		want: []string{"235 ", "501 5.5.4 ", "501 5.5.4 "}},
	{name: "TLS garbage on the TLS port", mode: proxy.TLSImplicit,
		send: "\x16\x03\x01\x00\x10" + strings.Repeat("\xff", 16), closed: true},
	{name: "plaintext on the TLS port", mode: proxy.TLSImplicit, send: ehlo, closed: true},
	// go-smtp answers a failed STARTTLS handshake with 550 and goes on in
	// plaintext, where AUTH stays refused; the pre-auth timeout ends it.
	{name: "garbage after STARTTLS", mode: proxy.TLSStartTLS, send: ehlo + "STARTTLS\r\n" + strings.Repeat("\x00", 64),
		want: []string{"220 2.0.0 Ready to start TLS"}, closed: true, preAuth: 500 * time.Millisecond},
}

// TestHostileInput runs every case against a real proxy, then checks that
// another client still logs in and sends through the upstream.
func TestHostileInput(t *testing.T) {
	for _, tc := range hostileCases {
		t.Run(tc.name, func(t *testing.T) {
			mode := tc.mode
			if mode == "" {
				mode = proxy.TLSNone // secure by configuration: AUTH allowed
			}
			e := newEnv(t, envConfig{preAuth: tc.preAuth})
			nc, err := net.Dial("tcp", e.addrs[mode])
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.Write([]byte(tc.send)); err != nil {
				t.Fatal(err)
			}
			nc.SetReadDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(nc)
			want := tc.want
			if mode != proxy.TLSImplicit {
				want = append([]string{"220 mx.test ", "250 SIZE"}, want...)
			}
			if !readReplies(t, br, want, tc.mayReset) {
				return // reset, as allowed: the connection is gone
			}
			if tc.closed {
				expectEOF(t, nc, br)
			} else {
				nc.Write([]byte("NOOP\r\n"))
				readReplies(t, br, []string{"250 2.0.0 "}, false)
			}
			c := e.login()
			sendSimple(c, "bob@example.com", "Subject: still served\r\n\r\nhi\r\n")
		})
	}
}

// readReplies reads the final line of each reply and checks its prefix. It
// returns false if the connection was reset and reset is allowed.
func readReplies(t *testing.T, br *bufio.Reader, want []string, reset bool) bool {
	t.Helper()
	for _, w := range want {
		var line string
		for {
			l, err := br.ReadString('\n')
			if reset && errors.Is(err, syscall.ECONNRESET) {
				return false
			}
			if err != nil {
				t.Fatalf("read: %v, want a reply starting %q", err, w)
			}
			if len(l) >= 4 && l[3] == '-' {
				continue // not the last line of a multi-line reply
			}
			line = l
			break
		}
		if !strings.HasPrefix(line, w) {
			t.Fatalf("got %q, want a reply starting %q", line, w)
		}
	}
	return true
}

// expectEOF fails unless the proxy closes nc (a hang guard, not a timing
// assertion).
func expectEOF(t *testing.T, nc net.Conn, br *bufio.Reader) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		if _, err := br.ReadString('\n'); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("connection still open")
			}
			return
		}
	}
}
