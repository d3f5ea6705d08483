// Package proxytest holds what the front ends' tests share, in
// the manner of net/http/httptest. Only tests import it.
package proxytest

import (
	"context"
	"os"
	"regexp"
	"strings"
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

// Fail2banFilter returns the failregex lines of the fail2ban filter in the
// doc at path, with fail2ban's <HOST> turned into a Go named group
// "host", so tests check the filter admins actually copy.
func Fail2banFilter(t testing.TB, path string) []*regexp.Regexp {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*regexp.Regexp
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "failregex = ")
		switch {
		case ok:
			in = true
		case in && strings.HasPrefix(line, " "):
			rest = strings.TrimSpace(line)
		default:
			in = false
			continue
		}
		out = append(out, regexp.MustCompile(strings.ReplaceAll(rest, "<HOST>", `(?P<host>[0-9A-Fa-f.:]+)`)))
	}
	if len(out) == 0 {
		t.Fatalf("no failregex in %s", path)
	}
	return out
}

// Fail2banHosts applies the filter res (Fail2banFilter) to each line of
// log and returns the host of every line it matches, in order: what
// fail2ban would count against each client.
func Fail2banHosts(res []*regexp.Regexp, log string) []string {
	var hosts []string
	for _, line := range strings.Split(log, "\n") {
		for _, re := range res {
			if m := re.FindStringSubmatch(line); m != nil {
				hosts = append(hosts, m[re.SubexpIndex("host")])
				break
			}
		}
	}
	return hosts
}

// QuickThrottle is a throttle with o's limits but a microsecond's delay
// per failure, so that tests reach a lockout without waiting.
func QuickThrottle(o proxy.ThrottleOptions) *proxy.Throttle {
	o.FailureDelay, o.MaxFailureDelay = time.Microsecond, time.Microsecond
	return proxy.NewThrottle(&o)
}
