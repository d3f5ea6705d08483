package pop3

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// logBuffer collects log lines written from the server's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestFail2banFilter: docs/security.md's filter finds the client of every
// failed POP3 password check, and nothing else (not the lockout refusal),
// in both log formats.
func TestFail2banFilter(t *testing.T) {
	res := proxytest.Fail2banFilter(t, "../../docs/security.md")
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf logBuffer
			logger := slog.New(slog.NewTextHandler(&buf, nil))
			if format == "json" {
				logger = slog.New(slog.NewJSONHandler(&buf, nil))
			}
			e := newEnv(t, proxy.TLSNone, func(o *testOptions) {
				o.Logger = logger
				o.Throttle = proxy.NewThrottle(&proxy.ThrottleOptions{MaxFailures: 2,
					FailureDelay: time.Microsecond, MaxFailureDelay: time.Microsecond})
			})
			c := e.dial()
			for range 2 {
				c.cmd("USER ann@example.com")
				c.expectCmd("PASS wrong", textAuthFailed)
			}
			c.cmd("USER ann@example.com")
			c.expectCmd("PASS wrong", textUnavailable) // refused unchecked: not for fail2ban
			var hosts []string
			for _, line := range strings.Split(buf.String(), "\n") {
				for _, re := range res {
					if m := re.FindStringSubmatch(line); m != nil {
						hosts = append(hosts, m[re.SubexpIndex("host")])
						break
					}
				}
			}
			if got, want := fmt.Sprint(hosts), "[127.0.0.1 127.0.0.1]"; got != want {
				t.Fatalf("filter found %s, want %s in:\n%s", got, want, buf.String())
			}
		})
	}
}
