package pop3

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"mailgate/proxy"
)

var wantSecureCaps = []string{"USER", "SASL PLAIN", "RESP-CODES", "AUTH-RESP-CODE"}

// TestCapa: the capabilities on each kind of listener, and before and
// after STLS (RFC 2449, RFC 2595 section 4).
func TestCapa(t *testing.T) {
	for _, mode := range []proxy.TLSMode{proxy.TLSNone, proxy.TLSImplicit} {
		t.Run(string(mode), func(t *testing.T) {
			c := newEnv(t, mode, nil).dial()
			c.send("CAPA")
			c.expect("+OK Capability list follows")
			if got := c.multi(); !slices.Equal(got, wantSecureCaps) {
				t.Fatalf("CAPA = %q, want %q", got, wantSecureCaps)
			}
			if r := c.cmd("STLS"); r != "-ERR STLS not available" {
				t.Fatalf("STLS: %q", r)
			}
		})
	}
	t.Run("stls", func(t *testing.T) {
		e := newEnv(t, proxy.TLSStartTLS, nil)
		c := e.dial()
		c.send("CAPA")
		c.expect("+OK Capability list follows")
		if got := c.multi(); !slices.Equal(got, []string{"STLS"}) {
			t.Fatalf("CAPA before TLS = %q, want only STLS", got)
		}
		for _, cmd := range []string{"USER ann@example.com", "PASS good", "AUTH PLAIN " + b64("\x00ann@example.com\x00good"), "AUTH"} {
			if r := c.cmd("%s", cmd); r != textNeedTLS {
				t.Errorf("%s before TLS: %q, want %q", strings.Fields(cmd)[0], r, textNeedTLS)
			}
		}
		c.send("STLS")
		c.startTLS(e.clientTLS)
		c.send("CAPA")
		c.expect("+OK Capability list follows")
		if got := c.multi(); !slices.Equal(got, wantSecureCaps) {
			t.Fatalf("CAPA after TLS = %q, want %q", got, wantSecureCaps)
		}
		if r := c.cmd("STLS"); r != "-ERR STLS not available" {
			t.Fatalf("second STLS: %q", r)
		}
		c.cmd("USER ann@example.com")
		if r := c.cmd("PASS good"); r != "+OK Logged in" {
			t.Fatalf("PASS after STLS: %q", r)
		}
	})
}

// TestSTLSDiscardsPipelined: commands sent in clear right behind STLS are
// never read as commands inside TLS (RFC 2595 section 4).
func TestSTLSDiscardsPipelined(t *testing.T) {
	e := newEnv(t, proxy.TLSStartTLS, nil)
	c := e.dial()
	c.send("STLS\r\nUSER ann@example.com")
	c.startTLS(e.clientTLS)
	if r := c.cmd("PASS good"); r != "-ERR Send USER first" {
		t.Fatalf("PASS after STLS with USER pipelined in clear: %q", r)
	}
	if n := e.auth.calls.Load(); n != 0 {
		t.Fatalf("%d password checks, want none", n)
	}
}

// TestLogins: every way to log in reaches the upstream mailbox.
func TestLogins(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmds []string // the last one gets "+OK Logged in"
	}{
		{"user-pass", []string{"USER ann@example.com", "PASS good"}},
		{"lower-case", []string{"user ann@example.com", "pass good"}},
		{"password-with-space", []string{"USER ann@example.com", "PASS with space"}},
		{"auth-plain-ir", []string{"AUTH PLAIN " + b64("\x00ann@example.com\x00good")}},
		{"auth-plain-authzid", []string{"AUTH PLAIN " + b64("ann@example.com\x00ann@example.com\x00good")}},
		{"auth-plain-continuation", []string{"AUTH PLAIN", b64("\x00ann@example.com\x00good")}},
		{"auth-plain-lower-case", []string{"auth plain " + b64("\x00ann@example.com\x00good")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, proxy.TLSNone, nil)
			e.up.add([]byte("Subject: hi\r\n\r\nhello\r\n"))
			c := e.dial()
			for i, cmd := range tc.cmds {
				r := c.cmd("%s", cmd)
				switch {
				case i == len(tc.cmds)-1 && r != "+OK Logged in":
					t.Fatalf("%q: %q, want +OK Logged in", cmd, r)
				case i < len(tc.cmds)-1 && !strings.HasPrefix(r, "+"):
					t.Fatalf("%q: %q", cmd, r)
				}
			}
			if r := c.cmd("STAT"); r != "+OK 1 22" {
				t.Fatalf("STAT after login: %q", r)
			}
		})
	}
}

// TestPreAuthReplies: what each pre-auth command gets that does not log in.
func TestPreAuthReplies(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, nil)
	c := e.dial()
	for _, tc := range []struct{ cmd, want string }{
		{"NOOP", "-ERR Unknown command"},
		{"STAT", "-ERR Unknown command"},
		{"APOP ann@example.com 0123456789abcdef0123456789abcdef", "-ERR Unknown command"},
		{"", "-ERR Unknown command"},
		{"PASS good", "-ERR Send USER first"},
		{"USER", "-ERR Syntax: USER name"},
		{"AUTH LOGIN", "-ERR Unsupported authentication mechanism"},
		{"AUTH CRAM-MD5", "-ERR Unsupported authentication mechanism"},
		{"AUTH PLAIN !!", "-ERR Malformed SASL response"},
		{"AUTH PLAIN =", textAuthFailed},
		{"AUTH PLAIN " + b64("\x00ann@example.com\x00"), textAuthFailed}, // empty password: a probe
		{"USER ann@example.com", "+OK Send PASS"},
		{"PASS", textAuthFailed},
	} {
		if r := c.cmd("%s", tc.cmd); r != tc.want {
			t.Errorf("%q: %q, want %q", tc.cmd, r, tc.want)
		}
	}
	c.send("AUTH")
	c.expect("+OK Mechanisms follow")
	if got := c.multi(); !slices.Equal(got, []string{"PLAIN"}) {
		t.Errorf("AUTH: %q", got)
	}
	if r := c.cmd("QUIT"); r != "+OK mailgate signing off" {
		t.Errorf("QUIT: %q", r)
	}
	c.waitClosed()
}

// TestAuthCancel: "*" cancels AUTH (RFC 5034 section 4), and the client
// may log in afterwards.
func TestAuthCancel(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, nil)
	c := e.dial()
	if r := c.cmd("AUTH PLAIN"); r != "+ " {
		t.Fatalf("AUTH PLAIN: %q, want an empty challenge", r)
	}
	if r := c.cmd("*"); r != "-ERR AUTH cancelled" {
		t.Fatalf("*: %q", r)
	}
	if r := c.cmd("AUTH PLAIN %s", b64("\x00ann@example.com\x00good")); r != "+OK Logged in" {
		t.Fatalf("AUTH after cancel: %q", r)
	}
}

// TestRefusals: every authentication failure gets the one fixed reply,
// every outage the other.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, pass string
		setup      func(e *env)
		want       string
	}{
		{"wrong", "wrong", nil, textAuthFailed},
		{"noscope", "noscope", nil, textAuthFailed},
		{"authzid", "", nil, textAuthFailed},
		{"store-down", "down", nil, textUnavailable},
		{"idp-down", "good", func(e *env) { e.tokens.Err = fmt.Errorf("idp: %w", proxy.ErrUnavailable) }, textUnavailable},
		{"relink", "good", func(e *env) { e.tokens.Err = fmt.Errorf("relink: %w", proxy.ErrAuthFailed) }, textAuthFailed},
		{"upstream-temp", "good", func(e *env) { e.up.set("down") }, textUnavailable},
		{"upstream-refuses", "good", func(e *env) { e.up.set("refuse-always") }, textAuthFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, proxy.TLSNone, nil)
			if tc.setup != nil {
				tc.setup(e)
			}
			c := e.dial()
			var r string
			if tc.name == "authzid" {
				r = c.cmd("AUTH PLAIN %s", b64("bob@example.com\x00ann@example.com\x00good"))
			} else {
				c.cmd("USER ann@example.com")
				r = c.cmd("PASS %s", tc.pass)
			}
			if r != tc.want {
				t.Fatalf("got %q, want %q", r, tc.want)
			}
			if r := c.cmd("STAT"); r != "-ERR Unknown command" {
				t.Fatalf("STAT after a refused login: %q", r)
			}
			waitSessions(t, e.sessions, 0)
		})
	}
}

// TestUpstreamDownKeepsToken: -ERR [SYS/TEMP] from the upstream is not the
// token's fault.
func TestUpstreamDownKeepsToken(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, nil)
	e.up.set("down")
	c := e.dial()
	c.cmd("USER ann@example.com")
	if r := c.cmd("PASS good"); r != textUnavailable {
		t.Fatalf("PASS: %q", r)
	}
	if inv := e.tokens.Invalidations(); len(inv) != 0 {
		t.Fatalf("tokens invalidated: %q, want none", inv)
	}
}

// TestSessionLimit: over the per-mailbox session limit is an outage.
func TestSessionLimit(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, func(o *testOptions) {
		o.Limits = proxy.NewLimits(&proxy.LimitsOptions{SessionsPerMailbox: 1})
	})
	e.login("ann@example.com", "good")
	c := e.dial()
	c.cmd("USER ann@example.com")
	if r := c.cmd("PASS good"); r != textUnavailable {
		t.Fatalf("second session: %q", r)
	}
}

// TestFailuresPerConnection: past proxy.MaxLoginFailures the failure reply
// is the last line.
func TestFailuresPerConnection(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, nil)
	c := e.dial()
	for i := range proxy.MaxLoginFailures + 1 {
		if i%2 == 0 {
			c.cmd("USER ann@example.com")
			if r := c.cmd("PASS wrong"); r != textAuthFailed {
				t.Fatalf("failure %d: %q", i+1, r)
			}
		} else if r := c.cmd("AUTH PLAIN %s", b64("\x00ann@example.com\x00wrong")); r != textAuthFailed {
			t.Fatalf("failure %d: %q", i+1, r)
		}
	}
	c.waitClosed()
}

// TestPreAuthDeadline: a client that does not log in in time is closed.
func TestPreAuthDeadline(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, func(o *testOptions) { o.PreAuthTimeout = 300 * time.Millisecond })
	c := e.dial()
	c.cmd("USER ann@example.com")
	start := time.Now()
	c.waitClosed()
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("closed after %v", d)
	}
}

// TestLineTooLong: a line over MaxLine ends the connection.
func TestLineTooLong(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, func(o *testOptions) { o.MaxLine = 64 })
	c := e.dial()
	if r := c.cmd("USER %s", strings.Repeat("a", 100)); r != textTooLong {
		t.Fatalf("long USER: %q", r)
	}
	c.waitClosed()
	c = e.dial()
	c.cmd("AUTH PLAIN")
	if r := c.cmd("%s", strings.Repeat("A", 100)); r != textTooLong {
		t.Fatalf("long AUTH response: %q", r)
	}
	c.waitClosed()
}
