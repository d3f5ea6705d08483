package smtp

import (
	"testing"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// TestFail2banFilter: docs/security.md's filter finds the client of every failed
// AUTH, and nothing else (not the lockout refusal), in both log formats.
func TestFail2banFilter(t *testing.T) {
	want := []string{"203.0.113.9", "203.0.113.9", "2001:db8::9"}
	proxytest.CheckFail2ban(t, "../../docs/security.md", want, func(t *testing.T, json bool) string {
		th := proxytest.QuickThrottle(proxy.ThrottleOptions{MaxFailures: 2})
		e, _ := newHardEnv(t, envConfig{throttle: th, jsonLog: json})
		c := e.from("203.0.113.9")
		// A user name that forges a second remote key must not fool it.
		forged := `x" remote=192.0.2.1 `
		c.cmd(authPlain(forged, "wrong"), replyFailed)
		c.cmd(authPlain(forged, "wrong"), replyFailed)
		c.cmd(authPlain(forged, "wrong"), replyTemp)
		c6 := e.dialRaw(e.proxyAddr, "PROXY TCP6 2001:db8::9 ::1 1 2\r\n")
		c6.expect("220 mx.test ESMTP Service Ready")
		c6.ehlo()
		c6.cmd(authPlain(alice, "wrong"), replyFailed)
		return e.logs.String()
	})
}
