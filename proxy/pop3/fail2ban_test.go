package pop3

import (
	"log/slog"
	"testing"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// TestFail2banFilter: docs/security.md's filter finds the client of every
// failed POP3 password check, and nothing else (not the lockout refusal),
// in both log formats.
func TestFail2banFilter(t *testing.T) {
	want := []string{"127.0.0.1", "127.0.0.1"}
	proxytest.CheckFail2ban(t, "../../docs/security.md", want, func(t *testing.T, json bool) string {
		var buf proxytest.LogBuffer
		e := newEnv(t, proxy.TLSNone, func(o *testOptions) {
			o.Logger = proxytest.FormatLogger(json, &buf, slog.LevelInfo)
			o.Throttle = proxytest.QuickThrottle(proxy.ThrottleOptions{MaxFailures: 2})
		})
		c := e.dial()
		for range 2 {
			c.cmd("USER ann@example.com")
			c.expectCmd("PASS wrong", textAuthFailed)
		}
		c.cmd("USER ann@example.com")
		c.expectCmd("PASS wrong", textUnavailable) // refused unchecked: not for fail2ban
		return buf.String()
	})
}
