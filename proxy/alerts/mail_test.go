package alerts

import (
	"bufio"
	"context"
	"errors"
	"mailgate/internal/testclock"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"
)

// mailbag records the mails Send was given; it fails the first failN.
type mailbag struct {
	mu    sync.Mutex
	failN int
	tries int
	sent  []sentMail
}

type sentMail struct {
	from, to string
	msg      []byte
}

func (b *mailbag) send(_ context.Context, from, to string, msg []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tries++
	if b.failN > 0 {
		b.failN--
		return errors.New("454 4.7.0 try later")
	}
	b.sent = append(b.sent, sentMail{from, to, msg})
	return nil
}

func (b *mailbag) all() []sentMail {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]sentMail(nil), b.sent...)
}

func mailNotifier(t *testing.T, b *mailbag, c *testclock.Clock) *Notifier {
	t.Helper()
	n, _ := start(t, &Options{Now: c.Now,
		Mail: &MailOptions{From: "it@example.com", PortalURL: "https://mail.example.com/", Send: b.send}})
	return n
}

// TestMailOncePerDay: a dead link is mailed once a day per mailbox, with
// a fake clock; recoveries and unlinks are not mailed.
func TestMailOncePerDay(t *testing.T) {
	c := testclock.New(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	var b mailbag
	n := mailNotifier(t, &b, c)
	n.Notify("alice@example.com", NeedsRelink, "invalid_grant")
	n.Notify("alice@example.com", Linked, "linked again")
	n.Notify("alice@example.com", NeedsRelink, "invalid_grant") // same day: flapping
	n.Notify("bob@example.com", NeedsRelink, "invalid_grant")
	n.Notify("carol@example.com", Unlinked, "unlinked by an admin")
	closeNow(t, n)
	if got := recipients(b.all()); got != "alice@example.com bob@example.com" {
		t.Fatalf("mailed %q on day 1", got)
	}

	c.Add(23 * time.Hour)
	n = mailNotifierWith(t, &b, c, n)
	n.Notify("alice@example.com", NeedsRelink, "invalid_grant")
	c.Add(time.Hour)
	n.Notify("alice@example.com", NeedsRelink, "invalid_grant")
	closeNow(t, n)
	if got := recipients(b.all()); got != "alice@example.com bob@example.com alice@example.com" {
		t.Fatalf("mailed %q after a day", got)
	}
}

// mailNotifierWith is a new Notifier that keeps prev's memory of mails, as
// one running daemon would (Close ends a Notifier for good).
func mailNotifierWith(t *testing.T, b *mailbag, c *testclock.Clock, prev *Notifier) *Notifier {
	t.Helper()
	n := mailNotifier(t, b, c)
	n.sent = prev.sent
	return n
}

func recipients(ms []sentMail) string {
	var to []string
	for _, m := range ms {
		to = append(to, m.to)
	}
	return strings.Join(to, " ")
}

// TestMailRetried: a failed submission is retried; after mailAttempts
// failures the mail is not recorded, so the next change mails again.
func TestMailRetried(t *testing.T) {
	c := testclock.New(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	b := mailbag{failN: mailAttempts + 1}
	n := mailNotifier(t, &b, c)
	n.Notify("alice@example.com", NeedsRelink, "invalid_grant") // fails 3 times
	n.Notify("alice@example.com", NeedsRelink, "invalid_grant") // fails once, then goes
	closeNow(t, n)
	if len(b.all()) != 1 || b.tries != mailAttempts+2 {
		t.Fatalf("%d mails in %d tries, want 1 in %d", len(b.all()), b.tries, mailAttempts+2)
	}
}

// TestMailText: the headers a mail needs, a plain UTF-8 body that names the
// mailbox and the portal, and a provider's reason that cannot add headers.
func TestMailText(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	ev := Event{Mailbox: "alice@example.com", State: NeedsRelink, Reason: "invalid_grant\r\nBcc: eve@evil.example"}
	raw := compose("it@example.com", "https://mail.example.com/", ev, at)
	msg, err := mail.ReadMessage(bufio.NewReader(strings.NewReader(string(raw))))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Header
	if from, err := mail.ParseAddress(h.Get("From")); err != nil || from.Address != "it@example.com" {
		t.Fatalf("From %q: %v", h.Get("From"), err)
	}
	if d, err := h.Date(); err != nil || !d.Equal(at) {
		t.Fatalf("Date %q: %v", h.Get("Date"), err)
	}
	checks := map[string]string{"To": "alice@example.com", "Content-Type": "text/plain; charset=utf-8", "Bcc": ""}
	for k, want := range checks {
		if h.Get(k) != want {
			t.Fatalf("%s = %q, want %q", k, h.Get(k), want)
		}
	}
	if id := h.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.com>") {
		t.Fatalf("Message-ID %q", id)
	}
	if h.Get("Subject") == "" {
		t.Fatal("no Subject")
	}
	text := string(raw[strings.Index(string(raw), "\r\n\r\n"):])
	for _, want := range []string{"alice@example.com", "https://mail.example.com/", "invalid_grant  Bcc: eve@evil.example"} {
		if !strings.Contains(text, want) {
			t.Fatalf("body lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(strings.ReplaceAll(string(raw), "\r\n", ""), "\n") {
		t.Fatal("a bare LF in the mail")
	}
}

// TestNoMailWithoutSender: no Mail options, no mail worker, and Notify
// still logs and posts.
func TestNoMailWithoutSender(t *testing.T) {
	n, _ := start(t, &Options{})
	if n.mails != nil || n.hooks != nil {
		t.Fatal("workers without a webhook or a mail sender")
	}
	n.Notify("alice@example.com", NeedsRelink, "invalid_grant")
	closeNow(t, n)
}
