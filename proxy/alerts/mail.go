package alerts

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"
)

// mail sends ev's user a mail, unless one went out for the same state in
// the last mailEvery.
func (n *Notifier) mail(ev Event) {
	key := ev.Mailbox + "\x00" + ev.State
	now := n.now()
	if last, ok := n.sent[key]; ok && now.Sub(last) < mailEvery {
		n.log.Info("alerts: user mailed about this less than a day ago", "user", ev.Mailbox, "state", ev.State)
		return
	}
	m := n.opts.Mail
	msg := compose(m.From, m.PortalURL, ev, now)
	err := n.retry(mailAttempts, func(ctx context.Context) (bool, error) {
		return true, m.Send(ctx, m.From, ev.Mailbox, msg)
	})
	if err != nil {
		n.log.Error("alerts: mail to the user not sent", "user", ev.Mailbox, "from", m.From, "err", err)
		return
	}
	n.forget(now)
	n.sent[key] = now
	n.log.Info("alerts: user mailed", "user", ev.Mailbox, "state", ev.State)
}

// forget drops the mail times older than mailEvery, so the map holds at
// most one day of changes.
func (n *Notifier) forget(now time.Time) {
	for k, t := range n.sent {
		if now.Sub(t) >= mailEvery {
			delete(n.sent, k)
		}
	}
}

// compose writes the plain-text mail (RFC 5322, 8bit UTF-8 body, CRLF
// line ends) that tells the user their mail programs stopped working and
// where to sign in again.
func compose(from, portal string, ev Event, now time.Time) []byte {
	_, domain, _ := strings.Cut(from, "@")
	var b strings.Builder
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, oneLine(v)) }
	header("From", "mailgate <"+from+">")
	header("To", ev.Mailbox)
	header("Subject", "Sign in again to keep your mail working")
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<"+rand.Text()+"@"+domain+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	for _, line := range body(portal, ev) {
		b.WriteString(line + "\r\n")
	}
	return []byte(b.String())
}

// body is the mail's text: what happened, what the user sees, what to do.
func body(portal string, ev Event) []string {
	lines := []string{
		"Hello,",
		"",
		"mailgate can no longer open your mailbox " + ev.Mailbox + " for your mail",
		"programs: your provider no longer accepts your earlier sign-in (after a",
		"password change, a long time unused, or a new security rule).",
		"",
		"Until you sign in again, Outlook and your other mail programs that use an",
		"app password will ask for your password. That password is not wrong:",
		"do not change it.",
		"",
	}
	if portal != "" {
		lines = append(lines, "Sign in again here:", "", "    "+portal, "")
	} else {
		lines = append(lines, "Ask your administrator to link your mailbox again.", "")
	}
	return append(lines, "Your app passwords stay as they are and work again once you have",
		"signed in.", "", "The provider's reason, for your administrator: "+oneLine(ev.Reason))
}

// oneLine keeps a value on its line: a provider's reason must not add
// headers or break the body's lines.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
