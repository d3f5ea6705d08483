package imap

import (
	"log/slog"
	"testing"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// TestFail2banFilter: docs/security.md's filter finds the client of every failed
// password check, and nothing else (not the lockout refusals), in both log
// formats.
func TestFail2banFilter(t *testing.T) {
	want := []string{"203.0.113.9", "203.0.113.9", "2001:db8::9"}
	proxytest.CheckFail2ban(t, "../../docs/security.md", want, func(t *testing.T, json bool) string {
		var buf proxytest.LogBuffer
		th := proxytest.QuickThrottle(proxy.ThrottleOptions{MaxFailures: 2})
		h := newHardEnv(t, th, nil, func(o *testOptions) { o.Logger = proxytest.FormatLogger(json, &buf, slog.LevelInfo) })
		c := h.from("203.0.113.9")
		// A user name that forges a second remote key must not fool it.
		for range 3 { // the third is refused unchecked
			c.cmd(`LOGIN "x\" remote=192.0.2.1 " wrong`)
		}
		c6 := connect(t, h.proxyAddr, "PROXY TCP6 2001:db8::9 ::1 1 2\r\n")
		c6.cmd("LOGIN ann@example.com wrong")
		c6.cmd("LOGIN ann@example.com good")
		return buf.String()
	})
}
