package imap

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailgate/proxy"
)

// loginClient logs in through the proxy with go-imap's client.
func (e *env) loginClient(user string, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	e.t.Helper()
	c := imapclient.New(e.dial(), &imapclient.Options{UnilateralDataHandler: h})
	e.t.Cleanup(func() { c.Close() })
	if err := c.Login(user, "good").Wait(); err != nil {
		e.t.Fatalf("LOGIN through the proxy: %v", err)
	}
	return c
}

func testMessage(subject, body string) string {
	return "From: a@example.com\r\nTo: ann@example.com\r\nSubject: " + subject + "\r\n\r\n" + body + "\r\n"
}

func TestClientSession(t *testing.T) {
	e := newEnv(t, proxy.TLSImplicit, nil)
	e.deliver("ann@example.com", strings.NewReader(testMessage("one", "first")))
	exists := make(chan uint32, 16)
	c := e.loginClient("ann@example.com", &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	})
	if !c.Caps().Has(imap.CapIdle) || c.Caps().Has(imap.Cap("AUTH=PLAIN")) {
		t.Fatalf("caps after login = %v, want the upstream's without AUTH=", c.Caps())
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 1 || sel.UIDValidity == 0 {
		t.Fatalf("SELECT = %+v, %v", sel, err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil || len(msgs) != 1 || string(msgs[0].BodySection[0].Bytes) != testMessage("one", "first") {
		t.Fatalf("FETCH = %v, %v", msgs, err)
	}
	store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}
	if msgs, err = c.Store(imap.SeqSetNum(1), store, nil).Collect(); err != nil || !hasFlag(msgs, imap.FlagSeen) {
		t.Fatalf("STORE = %v, %v", msgs, err)
	}
	testIdle(t, e, c, exists)
	testAppendMove(t, c)
}

func hasFlag(msgs []*imapclient.FetchMessageBuffer, f imap.Flag) bool {
	for _, m := range msgs {
		for _, g := range m.Flags {
			if g == f {
				return true
			}
		}
	}
	return false
}

// testIdle delivers a message while the client IDLEs: the upstream's EXISTS
// must come through the relay.
func testIdle(t *testing.T, e *env, c *imapclient.Client, exists chan uint32) {
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	e.deliver("ann@example.com", strings.NewReader(testMessage("two", "during idle")))
	select {
	case n := <-exists:
		if n != 2 {
			t.Fatalf("EXISTS %d during IDLE, want 2", n)
		}
	case <-time.After(20 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("no EXISTS during IDLE")
	}
	if err := idle.Close(); err != nil {
		t.Fatalf("DONE: %v", err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE end: %v", err)
	}
}

func testAppendMove(t *testing.T, c *imapclient.Client) {
	if err := c.Create("Archive", nil).Wait(); err != nil {
		t.Fatalf("CREATE: %v", err)
	}
	msg := testMessage("three", "appended")
	app := c.Append("INBOX", int64(len(msg)), nil)
	io.WriteString(app, msg)
	if err := app.Close(); err != nil {
		t.Fatalf("APPEND close: %v", err)
	}
	if _, err := app.Wait(); err != nil {
		t.Fatalf("APPEND: %v", err)
	}
	if _, err := c.Move(imap.SeqSetNum(1), "Archive").Wait(); err != nil {
		t.Fatalf("MOVE: %v", err)
	}
	st, err := c.Status("Archive", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 1 {
		t.Fatalf("STATUS Archive = %+v, %v; want 1 message", st, err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatalf("LOGOUT: %v", err)
	}
}

// TestClientLargeMessage FETCHes a 50 MB message through the proxy and
// compares it byte for byte.
func TestClientLargeMessage(t *testing.T) {
	const size = 50 << 20
	e := newEnv(t, proxy.TLSImplicit, nil)
	msg := bigMessage(size)
	want := sha256.Sum256(msg)
	e.deliver("big@example.com", bytes.NewReader(msg))
	c := e.loginClient("big@example.com", nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	cmd := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	defer cmd.Close()
	m := cmd.Next()
	if m == nil {
		t.Fatal("FETCH returned no message")
	}
	h, n := sha256.New(), int64(0)
	for item := m.Next(); item != nil; item = m.Next() {
		if body, ok := item.(imapclient.FetchItemDataBodySection); ok {
			n, _ = io.Copy(h, body.Literal)
		}
	}
	if n != int64(len(msg)) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("fetched %d bytes (sha256 %x), want %d (%x)", n, h.Sum(nil), len(msg), want)
	}
}

// bigMessage builds a message of about size bytes with 78-byte lines.
func bigMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString(testMessage("big", ""))
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "%08d %s\r\n", i, strings.Repeat("x", 67))
	}
	return b.Bytes()
}
