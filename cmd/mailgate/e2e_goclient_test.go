package main

import (
	"bytes"
	"errors"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// dialIMAP connects go-imap's client to one of mailgate's IMAP listeners.
func (e *e2e) dialIMAP(addr string, starttls bool, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	e.t.Helper()
	opts := &imapclient.Options{TLSConfig: e.tls, UnilateralDataHandler: h}
	var c *imapclient.Client
	var err error
	if starttls {
		c, err = imapclient.DialStartTLS(addr, opts)
	} else {
		c, err = imapclient.DialTLS(addr, opts)
	}
	if err != nil {
		e.t.Fatalf("dial %s: %v", addr, err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// loginIMAP logs in with LOGIN over implicit TLS.
func (e *e2e) loginIMAP(user, pass string, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	e.t.Helper()
	c := e.dialIMAP(e.imaps, false, h)
	if err := c.Login(user, pass).Wait(); err != nil {
		e.t.Fatalf("LOGIN %s through mailgate: %v", user, err)
	}
	return c
}

// sendSMTP submits msg through mailgate's STARTTLS listener with AUTH PLAIN.
func (e *e2e) sendSMTP(user, pass, from, to, msg string) error {
	e.t.Helper()
	c, err := smtp.DialStartTLS(e.smtp, e.tls)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		return err
	}
	if err := c.SendMail(from, []string{to}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// e2eMessage has a dot-stuffed line, a long line and 8-bit-free MIME so the
// whole path (client -> mailgate -> submission -> Postfix -> LMTP -> IMAP
// -> mailgate -> client) must keep every byte.
func e2eMessage(tag, to string) string {
	return strings.Join([]string{
		"From: <sender@example.com>",
		"To: <" + to + ">",
		"Subject: e2e " + tag,
		"Date: Tue, 25 Nov 2025 10:00:00 +0000",
		"Message-ID: <" + tag + "@e2e.test>",
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=us-ascii",
		"",
		"Hello over " + tag + ".",
		".a line that starts with a dot",
		"..and one with two",
		strings.Repeat("0123456789", 90),
		"",
	}, "\r\n")
}

// waitMaildir waits until the Maildir's new/ and cur/ hold n messages
// (delivery is asynchronous: Postfix queues, then LMTP).
func waitMaildir(t *testing.T, maildir string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		a, _ := filepath.Glob(filepath.Join(maildir, "new", "*"))
		b, _ := filepath.Glob(filepath.Join(maildir, "cur", "*"))
		if len(a)+len(b) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages in %s after 20s, want %d", len(a)+len(b), maildir, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkDelivered checks that got is sent with only header fields prepended
// (Return-Path, Delivered-To, Received from Postfix and Dovecot).
func checkDelivered(t *testing.T, got []byte, sent string) {
	t.Helper()
	added, ok := bytes.CutSuffix(got, []byte(sent))
	if !ok {
		t.Fatalf("fetched message does not end with the one sent:\n%q\nsent:\n%q", got, sent)
	}
	field := regexp.MustCompile(`^([!-9;-~]+:|[ \t])`)
	for _, l := range strings.SplitAfter(string(added), "\r\n") {
		if l != "" && !field.MatchString(l) {
			t.Errorf("prepended line is not a header field: %q", l)
		}
	}
	if !bytes.Contains(added, []byte("Received:")) {
		t.Errorf("no Received header prepended: %q", added)
	}
}

func fetchBody(t *testing.T, c *imapclient.Client, seq uint32) []byte {
	t.Helper()
	msgs, err := c.Fetch(imap.SeqSetNum(seq), &imap.FetchOptions{
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil || len(msgs) != 1 || len(msgs[0].BodySection) != 1 {
		t.Fatalf("FETCH %d BODY.PEEK[]: %v, %v", seq, msgs, err)
	}
	return msgs[0].BodySection[0].Bytes
}

// TestE2EMail sends through mailgate's SMTP, reads the message back byte
// for byte through mailgate's IMAP with go-imap v2, and works the mailbox:
// STORE \Seen, APPEND, MOVE, and IDLE noticing a new delivery.
func TestE2EMail(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	const user = "alice@example.com"
	pass := e.user(user)

	sent := e2eMessage("roundtrip", user)
	if err := e.sendSMTP(user, pass, "alice@example.com", user, sent); err != nil {
		t.Fatalf("send through mailgate: %v", err)
	}
	waitMaildir(t, e.stack.Maildir(user), 1)

	c := e.loginIMAP(user, pass, nil)
	if sel, err := c.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 1 || sel.UIDValidity == 0 {
		t.Fatalf("SELECT INBOX: %+v, %v", sel, err)
	}
	checkDelivered(t, fetchBody(t, c, 1), sent)

	store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}
	if _, err := c.Store(imap.SeqSetNum(1), store, nil).Collect(); err != nil {
		t.Fatalf("STORE +FLAGS (\\Seen): %v", err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(msgs) != 1 || !hasSeen(msgs[0].Flags) {
		t.Fatalf("FLAGS after STORE: %v, %v", msgs, err)
	}

	appended := e2eMessage("append", user)
	if err := appendMsg(c, "INBOX", appended); err != nil {
		t.Fatalf("APPEND: %v", err)
	}
	if got := fetchBody(t, c, 2); string(got) != appended {
		t.Fatalf("appended message came back as %q", got)
	}

	if err := c.Create("Archive", nil).Wait(); err != nil {
		t.Fatalf("CREATE Archive: %v", err)
	}
	if _, err := c.Move(imap.SeqSetNum(1), "Archive").Wait(); err != nil {
		t.Fatalf("MOVE 1 Archive: %v", err)
	}
	st, err := c.Status("Archive", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || st.NumMessages == nil || *st.NumMessages != 1 {
		t.Fatalf("STATUS Archive after MOVE: %+v, %v", st, err)
	}

	testIdle(t, e, user, pass, c)
}

// testIdle has a second connection IDLE in INBOX and delivers one message
// through mailgate's SMTP; the EXISTS must reach the idling client.
func testIdle(t *testing.T, e *e2e, user, pass string, other *imapclient.Client) {
	exists := make(chan uint32, 16)
	c := e.loginIMAP(user, pass, &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	})
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	if err := e.sendSMTP(user, pass, user, user, e2eMessage("idle", user)); err != nil {
		t.Fatalf("send during IDLE: %v", err)
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case n := <-exists:
			if n > sel.NumMessages {
				if err := idle.Close(); err != nil {
					t.Fatalf("DONE: %v", err)
				}
				if err := idle.Wait(); err != nil {
					t.Fatalf("IDLE end: %v", err)
				}
				return
			}
		case <-timeout:
			t.Fatalf("IDLE saw no new message in 30s (had %d)", sel.NumMessages)
		}
	}
}

func appendMsg(c *imapclient.Client, mailbox, msg string) error {
	cmd := c.Append(mailbox, int64(len(msg)), nil)
	if _, err := cmd.Write([]byte(msg)); err != nil {
		return err
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	_, err := cmd.Wait()
	return err
}

func hasSeen(flags []imap.Flag) bool {
	for _, f := range flags {
		if f == imap.FlagSeen {
			return true
		}
	}
	return false
}

// localhost turns 127.0.0.1:port into localhost:port for clients that check the
// certificate's DNS name (docs/clients.md, "Clients ignore IP addresses in
// certificates").
func localhost(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return "localhost:" + port
}

// TestE2ELargeMessage sends 5 MB through mailgate, Postfix and Dovecot and
// reads it back byte for byte; a message over the upstream's SIZE is refused
// at MAIL.
func TestE2ELargeMessage(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{postfix: true})
	const user = "large@example.com"
	pass := e.user(user)
	var b strings.Builder
	b.WriteString(e2eMessage("large", user))
	for b.Len() < 5<<20 {
		b.WriteString(strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789", 2) + "\r\n")
	}
	sent := b.String()
	if err := e.sendSMTP(user, pass, user, user, sent); err != nil {
		t.Fatalf("send 5 MB: %v", err)
	}
	waitMaildir(t, e.stack.Maildir(user), 1)
	c := e.loginIMAP(user, pass, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, fetchBody(t, c, 1), sent)

	// EHLO comes before AUTH, so mailgate advertises SIZE without a number
	// and applies the upstream's limit, learned at AUTH, at MAIL.
	sc, err := smtp.DialStartTLS(e.smtp, e.tls)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if ok, _ := sc.Extension("SIZE"); !ok {
		t.Error("no SIZE after STARTTLS")
	}
	if err := sc.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		t.Fatal(err)
	}
	var se *smtp.SMTPError
	err = sc.Mail(user, &smtp.MailOptions{Size: 4_000_000_000})
	if !errors.As(err, &se) || se.Code != 552 {
		t.Fatalf("MAIL SIZE=4GB: %v, want 552", err)
	}
}
