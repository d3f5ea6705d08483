// Package proxytest holds what the front ends' tests share, in
// the manner of net/http/httptest. Only tests import it.
package proxytest

import (
	"context"
	"syscall"
	"testing"
	"time"

	"mailgate/proxy"
)

// RefuseAll is an Authenticator that fails every login, so a fuzzed or
// hostile conversation never reaches an upstream.
type RefuseAll struct{}

var _ proxy.Authenticator = RefuseAll{}

// Authenticate implements proxy.Authenticator.
func (RefuseAll) Authenticate(context.Context, *proxy.LoginRequest) (*proxy.Identity, error) {
	return nil, proxy.ErrAuthFailed
}

// IdleConnCount is how many connections a test of idle clients holds:
// 10,000, or as many as the file descriptor limit (both ends are in the
// test process) and the race detector's goroutine limit allow. It raises
// the soft limit to the hard one first.
func IdleConnCount(t testing.TB) int {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}
	n := min(10000, (int(lim.Cur)-512)/2)
	if RaceEnabled {
		n = min(n, 7000)
	}
	if n < 1000 {
		t.Fatalf("file descriptor limit %d allows only %d connections; raise it (ulimit -n)", lim.Cur, n)
	}
	return n
}

// QuickThrottle is a throttle with o's limits but a microsecond's delay
// per failure, so that tests reach a lockout without waiting.
func QuickThrottle(o proxy.ThrottleOptions) *proxy.Throttle {
	o.FailureDelay, o.MaxFailureDelay = time.Microsecond, time.Microsecond
	return proxy.NewThrottle(&o)
}
