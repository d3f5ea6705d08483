package smtp

import (
	"errors"
	"io"
	"strings"
	"testing"

	"mailgate/proxy"
)

// TestSizeFromUpstream: with MaxMessageBytes 0 the upstream's SIZE, learned
// at AUTH, is the limit, both for SIZE= at MAIL and for the data itself. A
// message refused for size is never delivered and the session goes on.
func TestSizeFromUpstream(t *testing.T) {
	e := newEnv(t, envConfig{upstreamMx: 1000})
	c := e.login()
	c.cmd("MAIL FROM:<"+alice+"> SIZE=1001", "552 5.3.4 Message size exceeds fixed maximum message size")
	c.cmd("MAIL FROM:<"+alice+"> SIZE=900", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.cmd("RCPT TO:<carol@example.net>", "250 2.0.0 I'll make sure <carol@example.net> gets this")
	c.sendData("Subject: big\r\n\r\n"+strings.Repeat("x", 2000)+"\r\n",
		"552 5.3.4 Message size exceeds fixed maximum message size")
	// The aborted DATA cost the upstream connection; the next MAIL logs in
	// again.
	sendSimple(c, "carol@example.net", "Subject: small\r\n\r\nok\r\n")
	if got := e.deliv.all(); len(got) != 1 || !strings.Contains(string(got[0].Data), "small") {
		t.Fatalf("delivered %+v, want only the small message", got)
	}
}

// TestSizeFromOptions: a lower MaxMessageBytes is advertised and enforced.
func TestSizeFromOptions(t *testing.T) {
	e := newEnv(t, envConfig{proxyMax: 500, upstreamMx: 1000})
	c := e.dial(proxy.TLSNone)
	if got := c.ehlo(); got[len(got)-1] != "250 SIZE 500" {
		t.Fatalf("EHLO = %q, want SIZE 500 last", got)
	}
	c.cmd(alicePlain, "235 2.0.0 Authentication succeeded")
	c.cmd("MAIL FROM:<"+alice+"> SIZE=501", "552 5.3.4 Max message size exceeded")
	c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.cmd("RCPT TO:<carol@example.net>", "250 2.0.0 I'll make sure <carol@example.net> gets this")
	c.sendData(strings.Repeat("y", 600)+"\r\n", "552 5.3.4 Message size exceeds fixed maximum message size")
	if got := e.deliv.all(); len(got) != 0 {
		t.Fatalf("delivered %d messages, want none", len(got))
	}
}

// TestUpstreamDiesMidData: the client gets a 4xx, never 250, and the next
// MAIL reports the upstream as unavailable.
func TestUpstreamDiesMidData(t *testing.T) {
	e := newEnv(t, envConfig{})
	e.deliv.hook = func(r io.Reader) error {
		io.CopyN(io.Discard, r, 64<<10)
		e.up.Close()
		return errors.New("upstream crashed")
	}
	c := e.login()
	c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.cmd("RCPT TO:<carol@example.net>", "250 2.0.0 I'll make sure <carol@example.net> gets this")
	c.sendData(string(bigMessage(4<<20)), "451 4.4.2 Connection to the mail server lost, try again later")
	c.cmd("MAIL FROM:<"+alice+">", "451 4.4.1 Mail server unavailable, try again later")
	c.cmd("QUIT", "221 2.0.0 Bye")
}

// TestRevokeDuringData: the upstream sees the message cut off, never
// complete.
func TestRevokeDuringData(t *testing.T) {
	e := newEnv(t, envConfig{})
	started, upErr := cutOffHook(e)
	c := e.login()
	c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.cmd("RCPT TO:<carol@example.net>", "250 2.0.0 I'll make sure <carol@example.net> gets this")
	c.cmd("DATA", "354 Go ahead. End your data with <CR><LF>.<CR><LF>")
	c.send("Subject: half a message")
	c.send("")
	c.send("first line")
	<-started // the upstream is inside DATA
	if n := e.sessions.ClosePassword(aliceID); n != 1 {
		t.Fatalf("ClosePassword = %d, want 1", n)
	}
	if err := <-upErr; err == nil {
		t.Fatal("upstream received a complete message after the session was closed")
	}
	c.expectClosed()
}
