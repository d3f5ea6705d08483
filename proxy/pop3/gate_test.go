package pop3

import (
	"bufio"
	"net"
	"testing"
	"time"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// The shared login step (proxy.Gate) and lifecycle (proxy.Front), seen from
// POP3 clients.

// TestThrottled: a locked-out client gets the outage reply, even with the
// right password, and the refusal counts toward the connection's failures.
func TestThrottled(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, func(o *testOptions) {
		o.Throttle = proxytest.QuickThrottle(proxy.ThrottleOptions{MaxFailures: 2})
	})
	c := e.dial()
	for range 2 {
		c.cmd("USER ann@example.com")
		c.expectCmd("PASS wrong", textAuthFailed)
	}
	c.cmd("USER ann@example.com")
	if r := c.cmd("PASS good"); r != textUnavailable {
		t.Fatalf("PASS while locked out: %q, want %q", r, textUnavailable)
	}
	c.cmd("USER ann@example.com")
	if r := c.cmd("PASS good"); r != textUnavailable {
		t.Fatalf("fourth login: %q", r)
	}
	c.waitClosed() // past proxy.MaxLoginFailures
}

// TestConnectionLimit: a connection over the limits gets the refusal line
// instead of the greeting.
func TestConnectionLimit(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, func(o *testOptions) {
		o.Limits = proxy.NewLimits(&proxy.LimitsOptions{ConnsPerIP: 1})
	})
	e.login("ann@example.com", "good") // logged in: never dropped to make room
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil || line != "-ERR [SYS/TEMP] Too many connections, try again later\r\n" {
		t.Fatalf("over the limit: %q, %v", line, err)
	}
}
