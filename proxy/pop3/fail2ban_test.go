package pop3

import (
	"fmt"
	"log/slog"
	"testing"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// TestFail2banFilter: docs/security.md's filter finds the client of every
// failed POP3 password check, and nothing else (not the lockout refusal),
// in both log formats.
func TestFail2banFilter(t *testing.T) {
	res := proxytest.Fail2banFilter(t, "../../docs/security.md")
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf proxytest.LogBuffer
			logger := slog.New(slog.NewTextHandler(&buf, nil))
			if format == "json" {
				logger = slog.New(slog.NewJSONHandler(&buf, nil))
			}
			e := newEnv(t, proxy.TLSNone, func(o *testOptions) {
				o.Logger = logger
				o.Throttle = proxytest.QuickThrottle(proxy.ThrottleOptions{MaxFailures: 2})
			})
			c := e.dial()
			for range 2 {
				c.cmd("USER ann@example.com")
				c.expectCmd("PASS wrong", textAuthFailed)
			}
			c.cmd("USER ann@example.com")
			c.expectCmd("PASS wrong", textUnavailable) // refused unchecked: not for fail2ban
			if got, want := fmt.Sprint(proxytest.Fail2banHosts(res, buf.String())), "[127.0.0.1 127.0.0.1]"; got != want {
				t.Fatalf("filter found %s, want %s in:\n%s", got, want, buf.String())
			}
		})
	}
}
