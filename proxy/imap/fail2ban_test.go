package imap

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"mailgate/proxy"
)

// failregex returns the fail2ban failregex lines of the README's Security
// section, with fail2ban's <HOST> translated to a Go named group.
func failregex(t *testing.T) []*regexp.Regexp {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
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
		t.Fatal("no failregex in README.md")
	}
	return out
}

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

// TestFail2banFilter: the README's filter finds the client of every failed
// password check, and nothing else (not the lockout refusals), in both log
// formats.
func TestFail2banFilter(t *testing.T) {
	res := failregex(t)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf syncBuffer
			logger := slog.New(slog.NewTextHandler(&buf, nil))
			if format == "json" {
				logger = slog.New(slog.NewJSONHandler(&buf, nil))
			}
			th := quickThrottle(proxy.ThrottleOptions{MaxFailures: 2})
			h := newHardEnv(t, th, nil, func(o *Options) { o.Logger = logger })
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
