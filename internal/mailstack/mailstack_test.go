package mailstack

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// TestIMAP proves the upstream behaves like Exchange Online / Gmail: OAuth2
// mechanisms only, TLS first, and the XOAUTH2 failure dance.
func TestIMAP(t *testing.T) {
	t.Parallel()
	s := StartForTest(t, newIntrospector(t).URL)

	t.Run("xoauth2 good token", func(t *testing.T) {
		c := dialIMAP(t, s, s.IMAPS, true)
		c.mustLogin("alice@example.com")
		if _, st := c.cmd("SELECT INBOX"); !strings.HasPrefix(st, "OK") {
			t.Fatalf("SELECT after login: %s", st)
		}
	})
	t.Run("oauthbearer good token", func(t *testing.T) {
		c := dialIMAP(t, s, s.IMAPS, true)
		if _, st := c.cmd("AUTHENTICATE OAUTHBEARER %s", oauthbearer("bob@example.com", "good-bob@example.com")); !strings.HasPrefix(st, "OK") {
			t.Fatalf("AUTHENTICATE OAUTHBEARER: %s", st)
		}
	})
	t.Run("user name case", func(t *testing.T) {
		// auth_username_format %Lu lower-cases the SASL user before it is
		// compared with the introspected email.
		c := dialIMAP(t, s, s.IMAPS, true)
		if _, st := c.cmd("AUTHENTICATE XOAUTH2 %s", xoauth2("Dave@Example.COM", "good-dave@example.com")); !strings.HasPrefix(st, "OK") {
			t.Fatalf("mixed-case user: %s", st)
		}
	})
	t.Run("xoauth2 bad token", func(t *testing.T) {
		c := dialIMAP(t, s, s.IMAPS, true)
		tag := c.send("AUTHENTICATE XOAUTH2 %s", xoauth2("alice@example.com", "bad-token"))
		checkChallenge(t, c.line(), "+ ")
		if err := c.PrintfLine(""); err != nil {
			t.Fatal(err)
		}
		if _, st := c.wait(tag); !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED]") {
			t.Fatalf("after empty response: %s", st)
		}
	})
	t.Run("token for another user", func(t *testing.T) {
		c := dialIMAP(t, s, s.IMAPS, true)
		tag := c.send("AUTHENTICATE XOAUTH2 %s", xoauth2("alice@example.com", "good-mallory@example.com"))
		checkChallenge(t, c.line(), "+ ")
		c.PrintfLine("")
		if _, st := c.wait(tag); !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED]") {
			t.Fatalf("token of another user: %s", st)
		}
	})
	t.Run("introspection unavailable", func(t *testing.T) {
		c := dialIMAP(t, s, s.IMAPS, true)
		if _, st := c.cmd("AUTHENTICATE XOAUTH2 %s", xoauth2("alice@example.com", "down-1")); !strings.HasPrefix(st, "NO [UNAVAILABLE]") {
			t.Fatalf("provider down: %s", st)
		}
	})
	t.Run("login and plain refused", func(t *testing.T) {
		c := dialIMAP(t, s, s.IMAPS, true)
		caps, _ := c.cmd("CAPABILITY")
		if !strings.Contains(strings.Join(caps, " "), "LOGINDISABLED") {
			t.Errorf("CAPABILITY over TLS lacks LOGINDISABLED: %q", caps)
		}
		if _, st := c.cmd("LOGIN alice@example.com good-alice@example.com"); !strings.HasPrefix(st, "NO") {
			t.Errorf("LOGIN: %s", st)
		}
		if _, st := c.cmd("AUTHENTICATE PLAIN %s", base64.StdEncoding.EncodeToString([]byte("\x00alice@example.com\x00good-alice@example.com"))); !strings.HasPrefix(st, "NO") {
			t.Errorf("AUTHENTICATE PLAIN: %s", st)
		}
	})
	t.Run("auth before starttls refused", func(t *testing.T) {
		c := dialIMAP(t, s, s.IMAP, false)
		caps, _ := c.cmd("CAPABILITY")
		if j := strings.Join(caps, " "); !strings.Contains(j, "STARTTLS") || !strings.Contains(j, "LOGINDISABLED") {
			t.Errorf("plaintext CAPABILITY: %q", caps)
		}
		if _, st := c.cmd("AUTHENTICATE XOAUTH2 %s", xoauth2("alice@example.com", "good-alice@example.com")); !strings.HasPrefix(st, "NO [PRIVACYREQUIRED]") {
			t.Fatalf("AUTHENTICATE before STARTTLS: %s", st)
		}
	})
	t.Run("starttls then xoauth2", func(t *testing.T) {
		c := dialIMAP(t, s, s.IMAP, false)
		c.starttls(s)
		c.mustLogin("alice@example.com")
	})
}

// checkChallenge checks an XOAUTH2 error challenge: prefix, then base64 of
// a JSON object with status 401 (Google's and Dovecot's format).
func checkChallenge(t *testing.T, line, prefix string) {
	t.Helper()
	b64, ok := strings.CutPrefix(line, prefix)
	if !ok {
		t.Fatalf("want %q challenge, got %q", prefix, line)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("challenge %q: %v", line, err)
	}
	var v struct{ Status string }
	if err := json.Unmarshal(raw, &v); err != nil || v.Status != "401" {
		t.Fatalf("challenge JSON %s: status %q, err %v", raw, v.Status, err)
	}
}
