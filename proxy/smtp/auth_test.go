package smtp

import (
	"fmt"
	"slices"
	"testing"

	"github.com/emersion/go-sasl"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

var alicePlain = "AUTH PLAIN " + b64("\x00"+alice+"\x00"+alicePass)

// TestAuthFailures covers every way AUTH can fail and the fixed reply each
// one gets.
func TestAuthFailures(t *testing.T) {
	tests := []struct {
		name  string
		cfg   envConfig
		setup func(*env)
		auth  string
		want  string
	}{
		{"wrong password", envConfig{}, nil,
			"AUTH PLAIN " + b64("\x00"+alice+"\x00wrong"), "535 5.7.8 Authentication failed"},
		{"unknown user", envConfig{}, nil,
			"AUTH PLAIN " + b64("\x00nobody@example.com\x00"+alicePass), "535 5.7.8 Authentication failed"},
		{"authorization identity", envConfig{}, nil,
			"AUTH PLAIN " + b64("eve@example.com\x00"+alice+"\x00"+alicePass), "535 5.7.8 Authentication failed"},
		{"revoked", envConfig{}, func(e *env) { e.auth.revoked = true },
			alicePlain, "535 5.7.8 Authentication failed"},
		{"store down", envConfig{}, func(e *env) { e.auth.down = true },
			alicePlain, "454 4.7.0 Temporary authentication failure"},
		{"token always refused", envConfig{}, func(e *env) { e.tokens.always = "stale" },
			alicePlain, "535 5.7.8 Authentication failed"},
		{"mailbox must be re-linked", envConfig{}, func(e *env) {
			e.tokens.err = fmt.Errorf("invalid_grant: %w", proxy.ErrAuthFailed)
		}, alicePlain, "535 5.7.8 Authentication failed"},
		{"identity provider down", envConfig{}, func(e *env) {
			e.tokens.err = fmt.Errorf("token endpoint: %w", proxy.ErrUnavailable)
		}, alicePlain, "454 4.7.0 Temporary authentication failure"},
		{"upstream down", envConfig{upAddr: deadAddr(t)}, nil,
			alicePlain, "454 4.7.0 Temporary authentication failure"},
		{"upstream lacks mechanism", envConfig{mechanism: "OAUTHBEARER", upMechs: []string{"XOAUTH2"}}, nil,
			alicePlain, "454 4.7.0 Temporary authentication failure"},
		{"unknown mechanism", envConfig{}, nil,
			"AUTH CRAM-MD5", "504 5.7.4 Unsupported authentication mechanism"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.cfg)
			if tt.setup != nil {
				tt.setup(e)
			}
			c := e.dial(proxy.TLSNone)
			c.ehlo()
			c.cmd(tt.auth, tt.want)
			c.cmd("MAIL FROM:<"+alice+">", "530 5.7.0 Authentication required")
			if n := e.sessions.Len(); n != 0 {
				t.Errorf("tracker has %d sessions after a failed AUTH", n)
			}
		})
	}
}

// deadAddr returns an address nobody listens on.
func deadAddr(t *testing.T) string {
	ln := proxytest.Listen(t)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestTokenRefusedOnceIsRetried(t *testing.T) {
	e := newEnv(t, envConfig{})
	e.tokens.queue = []string{"stale-token"}
	c := e.login()
	if got := e.tokens.invalidations(); !slices.Equal(got, []string{"stale-token"}) {
		t.Errorf("invalidated %q, want [stale-token]", got)
	}
	c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
}

func TestTokenAlwaysRefusedInvalidatesBoth(t *testing.T) {
	e := newEnv(t, envConfig{})
	e.tokens.always = "stale-token"
	c := e.dial(proxy.TLSNone)
	c.ehlo()
	c.cmd(alicePlain, "535 5.7.8 Authentication failed")
	if got := e.tokens.invalidations(); !slices.Equal(got, []string{"stale-token", "stale-token"}) {
		t.Errorf("invalidated %q, want the token twice", got)
	}
}

// TestUpstreamVariants logs in through an implicit-TLS upstream and with
// OAUTHBEARER, and sends a message each time.
func TestUpstreamVariants(t *testing.T) {
	for _, cfg := range []envConfig{
		{implicitUp: true},
		{mechanism: sasl.OAuthBearer},
		{mechanism: sasl.OAuthBearer, implicitUp: true},
	} {
		t.Run(fmt.Sprintf("implicit=%v,%s", cfg.implicitUp, cfg.mechanism), func(t *testing.T) {
			e := newEnv(t, cfg)
			e.tokens.queue = []string{"stale-token"} // exercises the error challenge
			c := e.login()
			sendSimple(c, "carol@example.net", "Subject: x\r\n\r\nbody\r\n")
			if got := e.deliv.all(); len(got) != 1 {
				t.Fatalf("delivered %d messages, want 1", len(got))
			}
		})
	}
}

// TestTrackerClosePassword: revoking a password ends its session.
func TestTrackerClosePassword(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.login()
	if n := e.sessions.ClosePassword("other"); n != 0 {
		t.Fatalf("ClosePassword(other) = %d", n)
	}
	if n := e.sessions.ClosePassword(aliceID); n != 1 {
		t.Fatalf("ClosePassword = %d, want 1", n)
	}
	c.expectClosed()
}

// sendSimple sends one message to rcpt and expects it accepted.
func sendSimple(c *client, rcpt, msg string) {
	c.t.Helper()
	c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.cmd("RCPT TO:<"+rcpt+">", "250 2.0.0 I'll make sure <"+rcpt+"> gets this")
	c.sendData(msg, "250 2.0.0 OK: queued")
}

// TestTooManyAuthFailures: the failure after proxy.MaxLoginFailures ends
// the connection with 421; the ones before get 535 and leave it open
// (docs/clients.md, "One wrong password can cost two failures").
func TestTooManyAuthFailures(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.dial(proxy.TLSNone)
	c.ehlo()
	wrong := "AUTH PLAIN " + b64("\x00"+alice+"\x00wrong")
	for range proxy.MaxLoginFailures {
		c.cmd(wrong, "535 5.7.8 Authentication failed")
	}
	c.send(wrong)
	if got := c.expectClosed(); len(got) == 0 || got[0] != "421 4.7.0 Too many authentication failures" {
		t.Fatalf("after %d failures got %q, want 421 first", proxy.MaxLoginFailures+1, got)
	}
}
