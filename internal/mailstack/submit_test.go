package mailstack

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// submitters are the two SMTP dialects a stack offers.
func submitters(s *Stack) map[string]string {
	return map[string]string{"dovecot": s.Submission, "postfix": s.PostfixSubmission}
}

// TestSubmissionAuth checks both submission services: no AUTH before
// STARTTLS, OAuth2 mechanisms only, and the XOAUTH2 failure dance
// (334 JSON challenge, empty line, 535 5.7.8).
func TestSubmissionAuth(t *testing.T) {
	t.Parallel()
	s := StartForTest(t, newIntrospector(t).URL)
	for name, addr := range submitters(s) {
		t.Run(name, func(t *testing.T) {
			c := dialSMTP(t, s, addr, false)
			ehlo := c.must(250, "EHLO client.test")
			if strings.Contains(ehlo, "AUTH") {
				t.Errorf("AUTH offered before STARTTLS: %q", ehlo)
			}
			if code, msg := c.cmd("AUTH XOAUTH2 %s", xoauth2("alice@example.com", "good-alice@example.com")); code/100 != 5 {
				t.Fatalf("AUTH before STARTTLS: %d %s", code, msg)
			}
			ehlo = c.starttls(s)
			if !regexp.MustCompile(`(?m)^AUTH[ =].*XOAUTH2`).MatchString(ehlo) || strings.Contains(ehlo, "PLAIN") || strings.Contains(ehlo, "LOGIN") {
				t.Errorf("EHLO after STARTTLS: %q", ehlo)
			}
			if code, _ := c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA=="); code/100 != 5 {
				t.Errorf("AUTH PLAIN: %d, want 5xx", code)
			}
			checkChallenge(t, fmt.Sprint(c.must(334, "AUTH XOAUTH2 %s", xoauth2("alice@example.com", "bad"))), "")
			if msg := c.must(535, ""); !strings.HasPrefix(msg, "5.7.8") {
				t.Errorf("535 without 5.7.8: %q", msg)
			}
			c.must(235, "AUTH XOAUTH2 %s", xoauth2("alice@example.com", "good-alice@example.com"))
		})
	}
	t.Run("dovecot submissions", func(t *testing.T) {
		c := dialSMTP(t, s, s.SubmissionS, true)
		c.must(250, "EHLO client.test")
		c.must(235, "AUTH OAUTHBEARER %s", oauthbearer("bob@example.com", "good-bob@example.com"))
	})
	// Dovecot reports a provider outage as temporary; Postfix's smtpd
	// turns Dovecot's temporary failure into a plain 535.
	for _, tc := range []struct {
		name, addr string
		code       int
		enhanced   string
	}{{"dovecot", s.Submission, 454, "4.7.0"}, {"postfix", s.PostfixSubmission, 535, "5.7.8"}} {
		t.Run(tc.name+" provider down", func(t *testing.T) {
			c := dialSMTP(t, s, tc.addr, false)
			c.must(250, "EHLO client.test")
			c.starttls(s)
			if msg := c.must(tc.code, "AUTH XOAUTH2 %s", xoauth2("alice@example.com", "down-1")); !strings.HasPrefix(msg, tc.enhanced) {
				t.Errorf("%d without %s: %q", tc.code, tc.enhanced, msg)
			}
		})
	}
}

// TestDelivery submits through each submission service and reads the
// message back over IMAP byte for byte.
func TestDelivery(t *testing.T) {
	t.Parallel()
	s := StartForTest(t, newIntrospector(t).URL)
	for name, addr := range submitters(s) {
		t.Run(name, func(t *testing.T) {
			rcpt := name + "-rcpt@example.com"
			msg := testMessage(name)
			c := dialSMTP(t, s, addr, false)
			c.must(250, "EHLO client.test")
			c.starttls(s)
			c.must(235, "AUTH XOAUTH2 %s", xoauth2("sender@example.com", "good-sender@example.com"))
			c.send("sender@example.com", rcpt, msg)
			c.must(221, "QUIT")

			waitDelivered(t, s.Maildir(rcpt))
			ic := dialIMAP(t, s, s.IMAPS, true)
			ic.mustLogin(rcpt)
			ic.cmd("SELECT INBOX")
			got := ic.fetchFull(1)
			added, ok := bytes.CutSuffix(got, []byte(msg))
			if !ok {
				t.Fatalf("delivered message does not end with the one sent:\n%s", got)
			}
			checkHeaderBlock(t, added)
			t.Logf("%s path adds:\n%s", name, added)
		})
	}
}

// testMessage has a dot-stuffed line and a long body so transparency and
// CRLF handling are exercised.
func testMessage(tag string) string {
	lines := []string{
		"From: <sender@example.com>",
		"To: <" + tag + "-rcpt@example.com>",
		"Subject: mailstack " + tag,
		"Date: Tue, 25 Nov 2025 10:00:00 +0000",
		"Message-ID: <" + tag + "@mailstack.test>",
		"",
		"Hello over " + tag + ".",
		".a line that starts with a dot",
		strings.Repeat("0123456789", 30),
		"",
	}
	return strings.Join(lines, "\r\n")
}

// checkHeaderBlock checks that what delivery prepended is only header
// fields (name: value lines and folded continuations).
func checkHeaderBlock(t *testing.T, b []byte) {
	t.Helper()
	field := regexp.MustCompile(`^([!-9;-~]+:|[ \t])`)
	for _, l := range strings.SplitAfter(string(b), "\r\n") {
		if l != "" && !field.MatchString(l) {
			t.Errorf("prepended line is not a header field: %q", l)
		}
	}
}

// waitDelivered waits for one message in the Maildir's new/ (delivery runs
// Dovecot submission -> Postfix -> Dovecot LMTP, asynchronously).
func waitDelivered(t *testing.T, maildir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(maildir, "new", "*"))
		if len(files) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail in %s/new after 10s (%d files)", maildir, len(files))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
