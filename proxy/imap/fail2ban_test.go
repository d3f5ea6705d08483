package imap

import (
	"fmt"
	"log/slog"
	"testing"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// TestFail2banFilter: docs/security.md's filter finds the client of every failed
// password check, and nothing else (not the lockout refusals), in both log
// formats.
func TestFail2banFilter(t *testing.T) {
	res := proxytest.Fail2banFilter(t, "../../docs/security.md")
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf proxytest.LogBuffer
			logger := slog.New(slog.NewTextHandler(&buf, nil))
			if format == "json" {
				logger = slog.New(slog.NewJSONHandler(&buf, nil))
			}
			th := proxytest.QuickThrottle(proxy.ThrottleOptions{MaxFailures: 2})
			h := newHardEnv(t, th, nil, func(o *testOptions) { o.Logger = logger })
			c := h.from("203.0.113.9")
			// A user name that forges a second remote key must not fool it.
			for range 3 { // the third is refused unchecked
				c.cmd(`LOGIN "x\" remote=192.0.2.1 " wrong`)
			}
			c6 := connect(t, h.proxyAddr, "PROXY TCP6 2001:db8::9 ::1 1 2\r\n")
			c6.cmd("LOGIN ann@example.com wrong")
			c6.cmd("LOGIN ann@example.com good")
			got := fmt.Sprint(proxytest.Fail2banHosts(res, buf.String()))
			if want := "[203.0.113.9 203.0.113.9 2001:db8::9]"; got != want {
				t.Fatalf("filter found %s, want %s in:\n%s", got, want, buf.String())
			}
		})
	}
}
