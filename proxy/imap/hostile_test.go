package imap

import (
	"bufio"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"mailgate/proxy"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// hostileCases are bad inputs sent in one write, before the greeting is read
// (so every case is also "commands before the greeting"), with the replies
// expected after the greeting, each a line prefix. closed says the proxy must
// end the connection; otherwise it must still answer NOOP. Every input that
// makes the proxy close is sent whole, so the close is a clean FIN and the
// last reply is readable.
var hostileCases = []struct {
	name      string
	mode      proxy.TLSMode
	send      string
	want      []string
	closed    bool
	authCalls int32 // Authenticator calls the input may cause
}{
	{name: "pipelined before greeting", send: "a CAPABILITY\r\nb NOOP\r\nc ID NIL\r\n",
		want: []string{"* CAPABILITY ", "a OK ", "b OK ", `* ID ("name" "mailgate")`, "c OK "}},
	{name: "overlong line", send: "a NOOP " + strings.Repeat("x", 9000) + "\r\n",
		want: []string{"* BYE Command too long"}, closed: true},
	{name: "literal 2^63-1", send: "a LOGIN {9223372036854775807}\r\n", want: []string{"a BAD Literal too large"}},
	{name: "literal 2^63", send: "a LOGIN {9223372036854775808}\r\n", want: []string{"a BAD Literal too large"}},
	{name: "literal 10^30", send: "a LOGIN {" + strings.Repeat("9", 30) + "}\r\n", want: []string{"a BAD Literal too large"}},
	{name: "non-synchronising literal 2^63-1", send: "a LOGIN {9223372036854775807+}\r\n",
		want: []string{"* BYE Command too long"}, closed: true},
	{name: "negative literal", send: "a LOGIN {-1}\r\n", want: []string{"a BAD Syntax error"}},
	{name: "NUL in atom", send: "a LOGIN us\x00er good\r\n", want: []string{"a BAD Syntax error"}},
	{name: "NUL in quoted string", send: "a LOGIN \"us\x00er\" \"good\"\r\n", want: []string{"a BAD Syntax error"}},
	{name: "NUL in tag", send: "\x00 NOOP\r\n", want: []string{"* BAD Syntax error"}},
	// Malformed user names fail without a store lookup (proxy.Gate).
	{name: "NUL in literal", send: "a LOGIN {5+}\r\nus\x00er wrong\r\n",
		want: []string{"a NO [AUTHENTICATIONFAILED]"}, authCalls: 0},
	{name: "invalid UTF-8 user", send: "a LOGIN \xff\xfe\xfd wrong\r\n",
		want: []string{"a NO [AUTHENTICATIONFAILED]"}, authCalls: 0},
	{name: "invalid UTF-8 tag", send: "\xff\xfe NOOP\r\n", want: []string{"\xff\xfe OK NOOP"}},
	{name: "invalid UTF-8 breaking a token", send: "\xc3\x28 NOOP\r\n", want: []string{"\xc3 BAD Syntax error"}},
	{name: "only a tag", send: "a\r\n", want: []string{"a BAD Syntax error"}},
	{name: "bad tag", send: "* NOOP\r\n+ NOOP\r\n", want: []string{"* BAD Syntax error", "* BAD Syntax error"}},
	{name: "unbalanced quote", send: "a LOGIN \"user good\r\n", want: []string{"a BAD Syntax error"}},
	{name: "invalid base64 initial response", send: "a AUTHENTICATE PLAIN !!!!\r\n",
		want: []string{"a BAD Malformed initial response"}},
	{name: "invalid base64 response", send: "a AUTHENTICATE PLAIN\r\n%%%\r\n",
		want: []string{"+ ", "a BAD Malformed SASL response"}},
	{name: "truncated base64", send: "a AUTHENTICATE PLAIN " + b64("\x00u\x00good")[:5] + "\r\n",
		want: []string{"a BAD Malformed initial response"}},
	{name: "SASL PLAIN two fields", send: "a AUTHENTICATE PLAIN " + b64("user\x00good") + "\r\n",
		want: []string{"a NO [AUTHENTICATIONFAILED]"}},
	{name: "SASL PLAIN four fields", send: "a AUTHENTICATE PLAIN " + b64("\x00user\x00good\x00extra") + "\r\n",
		want: []string{"a NO [AUTHENTICATIONFAILED]"}},
	{name: "SASL PLAIN other authzid", send: "a AUTHENTICATE PLAIN " + b64("admin\x00user\x00good") + "\r\n",
		want: []string{"a NO [AUTHENTICATIONFAILED]"}},
	{name: "SASL PLAIN empty", send: "a AUTHENTICATE PLAIN =\r\n", want: []string{"a NO [AUTHENTICATIONFAILED]"}},
	{name: "SASL LOGIN invalid base64 password", send: "a AUTHENTICATE LOGIN " + b64("user") + "\r\n***\r\n",
		want: []string{"+ " + b64("Password:"), "a BAD Malformed SASL response"}},
	{name: "SASL mechanism with arguments", send: "a AUTHENTICATE PLAIN x y\r\n",
		want: []string{"a BAD Syntax error in AUTHENTICATE"}},
	{name: "unsupported mechanism", send: "a AUTHENTICATE CRAM-MD5\r\n", want: []string{"a NO Unsupported"}},
	{name: "malformed SASL counts as failure",
		send: strings.Repeat("a AUTHENTICATE PLAIN "+b64("user\x00good")+"\r\n", 4),
		want: []string{"a NO ", "a NO ", "a NO ", "a NO ", "* BYE Too many failed logins"}, closed: true},
	{name: "AUTHENTICATE flood",
		send: strings.Repeat("a AUTHENTICATE PLAIN "+b64("\x00user@example.com\x00wrong")+"\r\n", 4),
		want: []string{"a NO ", "a NO ", "a NO ", "a NO ", "* BYE Too many failed logins"}, closed: true, authCalls: 4},
	{name: "cancelled AUTHENTICATE flood", send: strings.Repeat("a AUTHENTICATE PLAIN\r\n*\r\n", 50),
		want: slicesRepeat([]string{"+ ", "a BAD AUTHENTICATE cancelled"}, 50)},
	{name: "TLS garbage on the TLS port", mode: proxy.TLSImplicit,
		send: "\x16\x03\x01\x00\x10" + strings.Repeat("\xff", 16), closed: true},
	{name: "plaintext on the TLS port", mode: proxy.TLSImplicit, send: "a LOGIN user good\r\n", closed: true},
	{name: "HTTP on the TLS port", mode: proxy.TLSImplicit, send: "GET / HTTP/1.0\r\n\r\n", closed: true},
}

func slicesRepeat(s []string, n int) []string {
	var out []string
	for range n {
		out = append(out, s...)
	}
	return out
}

// TestHostileInput runs every case against a real proxy, then checks that
// another client still logs in and reaches the upstream.
func TestHostileInput(t *testing.T) {
	for _, tc := range hostileCases {
		t.Run(tc.name, func(t *testing.T) {
			mode := tc.mode
			if mode == "" {
				mode = proxy.TLSNone // a "none" listener is secure by configuration: logins allowed
			}
			e := newEnv(t, mode, nil)
			nc, err := dialRaw(e)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.Write([]byte(tc.send)); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(nc)
			nc.SetReadDeadline(time.Now().Add(20 * time.Second))
			if mode != proxy.TLSImplicit {
				expectLine(t, br, "* OK [CAPABILITY ")
			}
			for _, w := range tc.want {
				expectLine(t, br, w)
			}
			if tc.closed {
				waitClosed(t, nc, br)
			} else {
				nc.Write([]byte("z NOOP\r\n"))
				expectLine(t, br, "z OK NOOP completed")
			}
			if n := e.auth.calls.Load(); n != tc.authCalls {
				t.Errorf("Authenticator called %d times, want %d", n, tc.authCalls)
			}
			e.loginClient("other@example.com", nil).Logout()
		})
	}
}

// dialRaw connects without TLS even to an implicit-TLS listener.
func dialRaw(e *env) (net.Conn, error) {
	return net.Dial("tcp", e.addr)
}

func expectLine(t *testing.T, br *bufio.Reader, prefix string) {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, prefix) || !strings.HasSuffix(line, "\r\n") {
		t.Fatalf("got %q, %v; want a line starting %q", line, err, prefix)
	}
}
