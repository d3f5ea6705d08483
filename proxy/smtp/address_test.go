package smtp

import (
	"slices"
	"strings"
	"testing"
)

// countLogins counts the upstream logins from now on: each takes one token
// from the fake token source's queue.
func (e *env) countLogins() func() int {
	const n = 1000
	e.tokens.mu.Lock()
	e.tokens.queue = slices.Repeat([]string{goodToken}, n)
	e.tokens.mu.Unlock()
	return func() int {
		e.tokens.mu.Lock()
		defer e.tokens.mu.Unlock()
		return n - len(e.tokens.queue)
	}
}

const replyControl = "501 5.5.4 Control characters are not allowed in addresses or parameters"

// TestControlCharsInAddresses: MAIL and RCPT with a control character in the
// address (or in AUTH=, the one parameter that carries an address) get 501
// 5.5.4 and never reach the upstream. They come while a transaction is open:
// a MAIL relayed upstream would reset it there (losing carol), a RCPT would
// add a recipient, a dropped upstream connection would fail the DATA. LF
// cannot be inside a command: go-smtp ends the line there.
func TestControlCharsInAddresses(t *testing.T) {
	e := newEnv(t, envConfig{})
	logins := e.countLogins()
	c := e.login()
	c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.cmd("RCPT TO:<carol@example.net>", "250 2.0.0 I'll make sure <carol@example.net> gets this")
	bad := []string{
		"MAIL FROM:<ali\rce@example.com>",
		"MAIL FROM:<alice@exa\rmple.com>",
		"MAIL FROM:<alice@example.com\r>",
		"MAIL FROM:<ali\x00ce@example.com>",
		"MAIL FROM:<alice@example.com\x00>",
		"MAIL FROM:<ali\x01ce@example.com>",
		"MAIL FROM:<alice@example.com\x7f>",
		"MAIL FROM:<\"ali\rce\"@example.com>",
		"MAIL FROM:<alice@example.com\u0085>", // C1 NEL
		"MAIL FROM:<" + alice + "> AUTH=ali\x01ce@example.com",
		"RCPT TO:<vic\rtim@example.net>",
		"RCPT TO:<victim@example.net\r>",
		"RCPT TO:<victim@exa\rmple.net>",
		"RCPT TO:<vic\x00tim@example.net>",
		"RCPT TO:<victim@example.net\x00>",
		"RCPT TO:<vic\x01tim@example.net>",
		"RCPT TO:<victim@example.net\x1b>",
		"RCPT TO:<vic\x7ftim@example.net>",
		"RCPT TO:<\"vic\x00tim\"@example.net>",
		"RCPT TO:vic\rtim@example.net",
	}
	for _, line := range bad {
		c.cmd(line, replyControl)
	}
	// Other parameters never reach mailgate: go-smtp refuses them itself.
	c.cmd("MAIL FROM:<"+alice+"> SIZE=1\x00", "501 5.5.4 Unable to parse SIZE as an integer")
	c.cmd("MAIL FROM:<"+alice+"> BODY=8BITMIME\x01", "501 5.5.4 Unknown BODY value")
	c.cmd("RCPT TO:<victim@example.net> X\x7f=1", "500 5.5.4 Unknown RCPT TO argument")
	c.sendData("Subject: after the bad commands\r\n\r\nhi\r\n", "250 2.0.0 OK: queued")
	sendSimple(c, "dave@example.net", "Subject: next\r\n\r\nhi\r\n")
	if got := e.deliv.all(); len(got) != 2 || got[0].To != "carol@example.net" || got[1].To != "dave@example.net" {
		t.Fatalf("delivered %+v, want one message to carol, then one to dave", got)
	}
	if n := logins(); n != 1 {
		t.Errorf("%d upstream logins, want 1 for the whole session", n)
	}
	if logs := e.logs.String(); strings.Contains(logs, "upstream connection lost") {
		t.Errorf("a refused address was logged as a lost upstream:\n%s", logs)
	}
}

// TestControlCharsBeforeTransaction: with no transaction open, a bad MAIL
// logs in nowhere and the next good one goes through on the same upstream
// connection.
func TestControlCharsBeforeTransaction(t *testing.T) {
	e := newEnv(t, envConfig{})
	logins := e.countLogins()
	c := e.login()
	for range 20 {
		c.cmd("MAIL FROM:<ali\rce@example.com>", replyControl)
	}
	sendSimple(c, "carol@example.net", "Subject: x\r\n\r\nhi\r\n")
	if n := logins(); n != 1 {
		t.Errorf("%d upstream logins, want 1", n)
	}
}
