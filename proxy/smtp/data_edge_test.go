package smtp

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"mailgate/proxy"
)

// TestCRLFWriter: every bare CR becomes CRLF, wherever the writes split the
// message; CRLF and bare LF (the DotWriter's job) pass unchanged.
func TestCRLFWriter(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\r\nb\r\n", "a\r\nb\r\n"},
		{"a\rb", "a\r\nb"},
		{"a\r.\r\nb", "a\r\n.\r\nb"},
		{"a\r.\rb", "a\r\n.\r\nb"},
		{"\r\r\r\n", "\r\n\r\n\r\n"},
		{"a\n.\nb", "a\n.\nb"},
		{"end\r", "end\r\n"},
		{"\r", "\r\n"},
		{"", ""},
	}
	for _, tt := range tests {
		for split := 0; split <= len(tt.in); split++ {
			var buf bytes.Buffer
			w := &crlfWriter{w: &buf}
			for _, part := range []string{tt.in[:split], tt.in[split:]} {
				if n, err := io.WriteString(w, part); n != len(part) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", part, n, err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("%q split at %d: wrote %q, want %q", tt.in, split, got, tt.want)
			}
		}
	}
}

// smuggled is what an SMTP smuggling attack hides in a message: a second
// transaction for a recipient the client never named.
const smuggled = "MAIL FROM:<ceo@example.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n" +
	"From: ceo@example.com\r\nSubject: smuggled\r\n\r\npay now\r\n"

// relined ends every line of msg but the last with eol instead of CRLF.
func relined(msg, eol string) string {
	return strings.ReplaceAll(strings.TrimSuffix(msg, "\r\n"), "\r\n", eol) + "\r\n"
}

// TestBareCRNormalised sends messages with bare CR (and bare LF) sequences
// byte for byte and checks what the upstream receives: one message, to
// carol only, CRLF lines only. want, where set, is the message exactly.
func TestBareCRNormalised(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"CR dot CRLF", "x\r.\r\ny\r\n", "x\r\n.\r\ny\r\n"},
		{"CR dot CR", "x\r.\ry\r\n", "x\r\n.\r\ny\r\n"},
		{"bare CR", "one\rtwo\r\n", "one\r\ntwo\r\n"},
		{"CRLF dot CR smuggling", "x\r\n.\r" + smuggled, ""},
		{"CR dot CR smuggling", "x\r.\r" + relined(smuggled, "\r"), ""},
		{"CR dot CRLF smuggling", "x\r.\r\n" + smuggled, ""},
		{"LF dot LF smuggling", "x\n.\n" + relined(smuggled, "\n"), ""},
		{"LF dot CRLF smuggling", "x\n.\r\n" + smuggled, ""},
		{"CRLF dot LF smuggling", "x\r\n.\n" + smuggled, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envConfig{})
			c := e.login()
			c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
			c.cmd("RCPT TO:<carol@example.net>", "250 2.0.0 I'll make sure <carol@example.net> gets this")
			c.cmd("DATA", "354 Go ahead. End your data with <CR><LF>.<CR><LF>")
			head := "Subject: " + tt.name + "\r\n\r\n"
			if _, err := io.WriteString(c.conn, head+tt.body+".\r\n"); err != nil {
				t.Fatal(err)
			}
			c.expect("250 2.0.0 OK: queued")
			c.cmd("NOOP", "250 2.0.0 I have successfully done nothing")
			got := e.deliv.all()
			if len(got) != 1 || got[0].To != "carol@example.net" {
				t.Fatalf("upstream delivered %+v, want one message to carol", got)
			}
			checkCRLF(t, got[0].Data)
			if tt.want != "" && string(got[0].Data) != head+tt.want {
				t.Errorf("upstream received %q, want %q", got[0].Data, head+tt.want)
			}
		})
	}
}

// TestBareCRInBDAT: BDAT chunks go upstream through DATA as well, so they
// are normalised the same way.
func TestBareCRInBDAT(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.login()
	c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.cmd("RCPT TO:<carol@example.net>", "250 2.0.0 I'll make sure <carol@example.net> gets this")
	msg := "Subject: b\r\n\r\nx\r.\r" + relined(smuggled, "\r")
	c.send(fmt.Sprintf("BDAT %d LAST", len(msg)))
	io.WriteString(c.conn, msg)
	c.expect("250 2.0.0 OK: queued")
	got := e.deliv.all()
	if len(got) != 1 || got[0].To != "carol@example.net" {
		t.Fatalf("upstream delivered %+v, want one message to carol", got)
	}
	checkCRLF(t, got[0].Data)
}

// checkCRLF fails unless every CR in data is followed by LF and every LF
// preceded by CR.
func checkCRLF(t *testing.T, data []byte) {
	t.Helper()
	for i, b := range data {
		if b == '\r' && (i+1 == len(data) || data[i+1] != '\n') || b == '\n' && (i == 0 || data[i-1] != '\r') {
			t.Fatalf("bare CR or LF at %d reached the upstream: %q", i, data)
		}
	}
}

// TestLongDataLine: a line longer than maxLineLength gets a permanent 552
// naming the limit, never a 4xx (the client would retry the same message
// forever), and nothing is delivered. go-smtp's line reader cannot go on
// after such a line, so the connection then closes (with go-smtp's own 500);
// the next connection sends normally. A line a little shorter than the limit
// is relayed intact.
func TestLongDataLine(t *testing.T) {
	long := strings.Repeat("b", maxLineLength+1000)
	tests := []struct {
		name     string
		body     string
		starttls bool
	}{
		{"long last line", long + "\r\n", false},
		{"long line then more", long + "\r\n" + strings.Repeat("more text\r\n", 30000), false},
		{"very long line", strings.Repeat(long, 5) + "\r\nend\r\n", false},
		{"long line over STARTTLS", long + "\r\n" + strings.Repeat("more text\r\n", 3000), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envConfig{})
			fits := "Subject: fits\r\n\r\n" + strings.Repeat("a", maxLineLength-100) + "\r\n"
			c := e.login()
			sendSimple(c, "carol@example.net", fits)
			if tt.starttls {
				c = e.dial(proxy.TLSStartTLS)
				c.ehlo()
				c.starttls(e.clientTC)
				c.ehlo()
				c.cmd(alicePlain, replyOK)
			}
			c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
			c.cmd("RCPT TO:<dave@example.net>", "250 2.0.0 I'll make sure <dave@example.net> gets this")
			c.sendData("Subject: too long\r\n\r\n"+tt.body, fmt.Sprintf("552 5.3.4 Message has a line longer than %d octets", maxLineLength))
			for _, line := range c.expectClosed() {
				if line[0] != '5' {
					t.Errorf("after the 552: %q, want only permanent replies", line)
				}
			}
			sendSimple(e.login(), "erin@example.net", "Subject: next\r\n\r\nhi\r\n")
			got := e.deliv.all()
			if len(got) != 2 || string(got[0].Data) != fits || got[1].To != "erin@example.net" {
				t.Fatalf("delivered %d messages, want the one that fits and the next", len(got))
			}
		})
	}
}

// TestBigMessageCorked sends a message of many TLS records, with lines
// that cross go-smtp's 4 KiB writes and the 32 KiB copy chunks and dots at
// the start of lines everywhere, through an upstream with STARTTLS and one
// with implicit TLS: the writes of each chunk leave corked (upstreamWriter),
// and the upstream receives the message byte for byte.
func TestBigMessageCorked(t *testing.T) {
	var body strings.Builder
	for i := 0; body.Len() < 600<<10; i++ {
		body.WriteString(".")
		body.WriteString(strings.Repeat(string(rune('a'+i%26)), (i*997)%9000))
		body.WriteString("\r\n")
	}
	msg := "Subject: big\r\n\r\n" + body.String()
	stuffed := "Subject: big\r\n\r\n" + strings.ReplaceAll("\r\n"+body.String(), "\r\n.", "\r\n..")[2:]
	for _, implicit := range []bool{false, true} {
		t.Run(fmt.Sprintf("implicit=%v", implicit), func(t *testing.T) {
			e := newEnv(t, envConfig{implicitUp: implicit})
			c := e.login()
			c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
			c.cmd("RCPT TO:<carol@example.net>", "250 2.0.0 I'll make sure <carol@example.net> gets this")
			c.cmd("DATA", "354 Go ahead. End your data with <CR><LF>.<CR><LF>")
			if _, err := io.WriteString(c.conn, stuffed+".\r\n"); err != nil {
				t.Fatal(err)
			}
			c.expect("250 2.0.0 OK: queued")
			got := e.deliv.all()
			if len(got) != 1 || string(got[0].Data) != msg {
				t.Fatalf("upstream received %d messages, not the %d bytes sent", len(got), len(msg))
			}
		})
	}
}
