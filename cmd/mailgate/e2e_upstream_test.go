package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"mailgate/internal/fakeidp"
	"mailgate/internal/mailstack"
)

// TestE2EUpstreams runs IMAP and SMTP through mailgate against both
// submission services (Dovecot submission, Postfix with Dovecot SASL) with
// both upstream mechanisms; the servers' logs show the mechanism used.
func TestE2EUpstreams(t *testing.T) {
	t.Parallel()
	idp, err := fakeidp.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	mailgateBinary(t)
	stack := mailstack.StartForTest(t, idp.IntrospectURL())
	for _, tc := range []struct {
		name    string
		postfix bool
		mech    string
	}{
		{"dovecot-xoauth2", false, "xoauth2"}, {"dovecot-oauthbearer", false, "oauthbearer"},
		{"postfix-xoauth2", true, "xoauth2"}, {"postfix-oauthbearer", true, "oauthbearer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newE2EWith(t, idp, stack, e2eOpts{postfix: tc.postfix, mechanism: tc.mech})
			user := tc.name + "@example.com"
			pass := e.user(user)
			c := e.loginIMAP(user, pass, nil)
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			sent := e2eMessage(tc.name, user)
			if err := e.sendSMTP(user, pass, user, user, sent); err != nil {
				t.Fatalf("send: %v", err)
			}
			waitMaildir(t, stack.Maildir(user), 1)
			if err := c.Noop().Wait(); err != nil { // learn of the new message
				t.Fatal(err)
			}
			checkDelivered(t, fetchBody(t, c, 1), sent)
			checkMechanism(t, stack, tc.postfix, user, tc.mech)
		})
	}
}

// checkMechanism finds the upstream's own record of the SASL mechanism
// mailgate used for user: Dovecot logs method=, Postfix sasl_method=.
func checkMechanism(t *testing.T, s *mailstack.Stack, postfix bool, user, mech string) {
	t.Helper()
	mech = strings.ToUpper(mech)
	u := regexp.QuoteMeta(user)
	type want struct {
		file string
		re   *regexp.Regexp
	}
	logs := []want{{"dovecot.log", regexp.MustCompile(`imap-login: Info: Login: user=<` + u + `>, method=` + mech + `\b`)}}
	if postfix {
		logs = append(logs, want{"postfix.log", regexp.MustCompile(`sasl_method=` + mech + `, sasl_username=` + u)})
	} else {
		logs = append(logs, want{"dovecot.log", regexp.MustCompile(`submission-login: Info: Login: user=<` + u + `>, method=` + mech + `\b`)})
	}
	for _, w := range logs {
		file, re := w.file, w.re
		b, err := os.ReadFile(filepath.Join(s.Dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if !re.Match(b) {
			t.Errorf("%s has no line matching %s; lines naming the user:\n%s", file, re, linesWith(b, user))
		}
	}
}

func linesWith(b []byte, sub string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestE2EPasswordScope: a password issued for IMAP only is refused by SMTP
// (535 5.7.8) and works for IMAP.
func TestE2EPasswordScope(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	const user = "scoped@example.com"
	e.mustLink(user)
	out := e.mustCLI("password", "create", "-json", "-name", "imap-only", "-scope", "imap", user)
	var p struct{ Password string }
	if err := json.Unmarshal([]byte(out), &p); err != nil || p.Password == "" {
		t.Fatalf("password create: %v: %q", err, out)
	}
	if code := e.imapLoginCode(user, p.Password); code != "" {
		t.Fatalf("IMAP login with an IMAP password: NO [%s]", code)
	}
	if code, enh := e.smtpAuthCode(user, p.Password); code != 535 || enh != (smtp.EnhancedCode{5, 7, 8}) {
		t.Fatalf("SMTP AUTH with an IMAP-only password: %d %v, want 535 5.7.8", code, enh)
	}
}
