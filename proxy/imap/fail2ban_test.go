package imap

import (
	"bytes"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// bannedHosts applies the filter to each log line and returns the hosts.
func bannedHosts(res []*regexp.Regexp, log string) []string {
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

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestFail2banFilter: docs/security.md's filter finds the client of every failed
// password check, and nothing else (not the lockout refusals), in both log
// formats.
func TestFail2banFilter(t *testing.T) {
	res := proxytest.Fail2banFilter(t, "../../docs/security.md")
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf syncBuffer
			logger := slog.New(slog.NewTextHandler(&buf, nil))
			if format == "json" {
				logger = slog.New(slog.NewJSONHandler(&buf, nil))
			}
			th := quickThrottle(proxy.ThrottleOptions{MaxFailures: 2})
			h := newHardEnv(t, th, nil, func(o *testOptions) { o.Logger = logger })
			c := h.from("203.0.113.9")
			// A user name that forges a second remote key must not fool it.
			for range 3 { // the third is refused unchecked
				c.cmd(`LOGIN "x\" remote=192.0.2.1 " wrong`)
			}
			c6 := connect(t, h.proxyAddr, "PROXY TCP6 2001:db8::9 ::1 1 2\r\n")
			c6.cmd("LOGIN ann@example.com wrong")
			c6.cmd("LOGIN ann@example.com good")
			got := fmt.Sprint(bannedHosts(res, buf.String()))
			if want := "[203.0.113.9 203.0.113.9 2001:db8::9]"; got != want {
				t.Fatalf("filter found %s, want %s in:\n%s", got, want, buf.String())
			}
		})
	}
}
