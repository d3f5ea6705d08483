package smtp

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestRecipientRejectedVerbatim(t *testing.T) {
	e := newEnv(t, envConfig{reject: map[string]*smtp.SMTPError{
		"nobody@example.net": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
			Message: "Recipient address rejected: User unknown"},
		"full@example.net": {Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2},
			Message: "Mailbox full\nTry again later"},
		"old@example.net": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: "[BN8NAM11FT066.eop-nam11.prod.protection.outlook.com 2024-01-01T00:00:00] Denied"},
	}})
	c := e.login()
	c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.cmd("RCPT TO:<nobody@example.net>", "550 5.1.1 Recipient address rejected: User unknown")
	// go-smtp, the upstream here, puts the enhanced code on the last line
	// only, so the client library sees none: the lines pass unchanged.
	c.send("RCPT TO:<full@example.net>")
	if got, want := c.reply(), []string{"452-Mailbox full", "452 4.2.2 Try again later"}; !equal(got, want) {
		t.Errorf("multi-line reply = %q, want %q", got, want)
	}
	c.cmd("RCPT TO:<old@example.net>",
		"550 5.7.1 [BN8NAM11FT066.eop-nam11.prod.protection.outlook.com 2024-01-01T00:00:00] Denied")
	c.cmd("RCPT TO:<carol@example.net>", "250 2.0.0 I'll make sure <carol@example.net> gets this")
	c.sendData("Subject: x\r\n\r\nhi\r\n", "250 2.0.0 OK: queued")
	got := e.deliv.all()
	if len(got) != 1 || got[0].To != "carol@example.net" {
		t.Fatalf("delivered %+v, want one message to carol", got)
	}
}

// TestRelayedBytesCounted: the message data, of DATA and of BDAT, counts
// as relayed toward the upstream as it is read (the relayed bytes metric);
// commands and replies do not.
func TestRelayedBytesCounted(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.login()
	if n := e.meter.toUpstream.n.Load(); n != 0 {
		t.Fatalf("%d bytes counted before any message", n)
	}
	msg := "Subject: x\r\n\r\n.dot\r\nhi\r\n"
	c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.cmd("RCPT TO:<carol@example.net>", "250 2.0.0 I'll make sure <carol@example.net> gets this")
	c.sendData(msg, "250 2.0.0 OK: queued")
	if n := e.meter.toUpstream.n.Load(); n != int64(len(msg)) {
		t.Errorf("after DATA of %d bytes: %d counted", len(msg), n)
	}
	c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.cmd("RCPT TO:<carol@example.net>", "250 2.0.0 I'll make sure <carol@example.net> gets this")
	c.send(fmt.Sprintf("BDAT %d LAST", len(msg)))
	io.WriteString(c.conn, msg)
	c.expect("250 2.0.0 OK: queued")
	if n := e.meter.toUpstream.n.Load(); n != 2*int64(len(msg)) {
		t.Errorf("after BDAT of %d bytes more: %d counted", len(msg), n)
	}
	if n := e.meter.toClient.n.Load(); n != 0 {
		t.Errorf("%d bytes counted toward the client", n)
	}
}

// TestLargeMessageByteExact streams 30 MB (lines of every length, dots,
// 8-bit bytes) and compares hashes.
func TestLargeMessageByteExact(t *testing.T) {
	e := newEnv(t, envConfig{})
	msg := bigMessage(30 << 20)
	c := e.login()
	c.cmd("MAIL FROM:<"+alice+"> SIZE="+fmt.Sprint(len(msg))+" BODY=8BITMIME",
		"250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.cmd("RCPT TO:<carol@example.net>", "250 2.0.0 I'll make sure <carol@example.net> gets this")
	c.sendData(string(msg), "250 2.0.0 OK: queued")
	got := e.deliv.all()
	if len(got) != 1 {
		t.Fatalf("delivered %d messages", len(got))
	}
	if sha256.Sum256(got[0].Data) != sha256.Sum256(msg) {
		t.Fatalf("message changed in transit: %d bytes sent, %d arrived", len(msg), len(got[0].Data))
	}
}

// bigMessage builds n bytes of CRLF lines, some starting with dots.
func bigMessage(n int) []byte {
	var b bytes.Buffer
	b.WriteString("Subject: big\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	for i := 0; b.Len() < n; i++ {
		switch i % 7 {
		case 0:
			b.WriteString(".")
		case 1:
			b.WriteString("..")
		}
		b.WriteString(strings.Repeat(string(rune('a'+i%26)), i%900))
		b.WriteString("é\r\n")
	}
	return b.Bytes()
}

func TestDotStuffingPreserved(t *testing.T) {
	e := newEnv(t, envConfig{})
	msg := "Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n..\r\n. \r\nend\r\n"
	c := e.login()
	sendSimple(c, "carol@example.net", msg)
	if got := e.deliv.all(); len(got) != 1 || string(got[0].Data) != msg {
		t.Fatalf("delivered %q, want %q", got, msg)
	}
}

func TestPipelining(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.login()
	// RFC 2920: the whole group in one write, DATA last.
	if _, err := io.WriteString(c.conn, "MAIL FROM:<"+alice+">\r\nRCPT TO:<a@example.net>\r\n"+
		"RCPT TO:<b@example.net>\r\nDATA\r\n"); err != nil {
		t.Fatal(err)
	}
	c.expect("250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.expect("250 2.0.0 I'll make sure <a@example.net> gets this")
	c.expect("250 2.0.0 I'll make sure <b@example.net> gets this")
	c.expect("354 Go ahead. End your data with <CR><LF>.<CR><LF>")
	if _, err := io.WriteString(c.conn, "Subject: p\r\n\r\nbody\r\n.\r\nNOOP\r\n"); err != nil {
		t.Fatal(err)
	}
	c.expect("250 2.0.0 OK: queued")
	c.expect("250 2.0.0 I have successfully done nothing")
	if got := e.deliv.all(); len(got) != 2 || got[0].To != "a@example.net" || got[1].To != "b@example.net" {
		t.Fatalf("delivered %+v, want one copy each to a and b", got)
	}
}

func TestSeveralMessagesAndRset(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.login()
	for i := range 3 {
		sendSimple(c, fmt.Sprintf("r%d@example.net", i), fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i))
	}
	// RSET in mid-transaction must reset the upstream too, or the next
	// MAIL would be refused there as nested.
	c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.cmd("RCPT TO:<dropped@example.net>", "250 2.0.0 I'll make sure <dropped@example.net> gets this")
	c.cmd("RSET", "250 2.0.0 Session reset")
	sendSimple(c, "last@example.net", "Subject: last\r\n\r\nbody\r\n")
	// A repeated EHLO resets as RSET does (RFC 5321 4.1.4).
	c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.ehlo()
	sendSimple(c, "after-ehlo@example.net", "Subject: e\r\n\r\nbody\r\n")
	var to []string
	for _, m := range e.deliv.all() {
		to = append(to, m.To)
	}
	want := []string{"r0@example.net", "r1@example.net", "r2@example.net", "last@example.net", "after-ehlo@example.net"}
	if !equal(to, want) {
		t.Fatalf("delivered to %q, want %q", to, want)
	}
}

func TestBDATRelayed(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.login()
	c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.cmd("RCPT TO:<carol@example.net>", "250 2.0.0 I'll make sure <carol@example.net> gets this")
	part1, part2 := "Subject: chunks\r\n\r\n.dot", " line\r\n"
	c.send(fmt.Sprintf("BDAT %d", len(part1)))
	io.WriteString(c.conn, part1)
	c.expect("250 2.0.0 Continue")
	c.send(fmt.Sprintf("BDAT %d LAST", len(part2)))
	io.WriteString(c.conn, part2)
	c.expect("250 2.0.0 OK: queued")
	if got := e.deliv.all(); len(got) != 1 || string(got[0].Data) != part1+part2 {
		t.Fatalf("delivered %q", got)
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

// TestBDATAbortedByRset: RSET between chunks abandons the message (the
// upstream never gets a final dot) and the session goes on.
func TestBDATAbortedByRset(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.login()
	c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.cmd("RCPT TO:<carol@example.net>", "250 2.0.0 I'll make sure <carol@example.net> gets this")
	part := "Subject: abandoned\r\n\r\n"
	c.send(fmt.Sprintf("BDAT %d", len(part)))
	io.WriteString(c.conn, part)
	c.expect("250 2.0.0 Continue")
	c.cmd("RSET", "250 2.0.0 Session reset")
	sendSimple(c, "dave@example.net", "Subject: kept\r\n\r\nbody\r\n")
	if got := e.deliv.all(); len(got) != 1 || got[0].To != "dave@example.net" {
		t.Fatalf("delivered %+v, want only the message to dave", got)
	}
}
