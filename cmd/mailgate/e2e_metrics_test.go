package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsConfig is appended to the e2e config: the endpoint on loopback,
// readable from 127.0.0.1 only (scrapes from 127.0.0.2 must get 403), and
// a mailbox lockout after two failures, quick, so a test can be throttled.
const metricsConfig = `metrics:
  listen: "127.0.0.1:0"
  allow: [127.0.0.1/32]
limits:
  max_mailbox_failures: 2
  failure_delay: 1ms
  max_failure_delay: 1ms
`

// readyConfig is the metrics endpoint alone, for tests that only ask
// /readyz.
const readyConfig = `metrics:
  listen: "127.0.0.1:0"
`

// startWithMetrics restarts e's daemon with the metrics endpoint and
// returns its base URL.
func (e *e2e) startWithMetrics() string { return e.startWith(metricsConfig) }

// startWith restarts e's daemon with extra appended to its config, which
// turns the metrics endpoint on, and returns the endpoint's base URL.
func (e *e2e) startWith(extra string) string {
	e.t.Helper()
	e.d.stop(e.t)
	f, err := os.OpenFile(e.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := f.WriteString(extra); err != nil {
		e.t.Fatal(err)
	}
	f.Close()
	e.d = startDaemon(e.t, e.cfg, e.env())
	addrs := e.d.listeners(e.t, 5)
	e.imaps, e.imap = addrs["imap/implicit"], addrs["imap/starttls"]
	e.smtps, e.smtp = addrs["smtp/implicit"], addrs["smtp/starttls"]
	return "http://" + addrs["metrics/none"]
}

// scrape is one parse of /metrics in the text format.
type scrape map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, base string) (scrape, []byte) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return families, body
}

// get returns the value of name{labels}: a counter's or gauge's value, a
// histogram's sample count. A missing series fails the test: every one of
// the contract exists from the start.
func (s scrape) get(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	f := s[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
	for _, m := range f.GetMetric() {
		if hasLabels(m, labels) {
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// TestE2EMetrics runs real logins, failures, a throttled mailbox, a FETCH,
// an SMTP message and a token refresh through the daemon, and checks that
// each moved its metric by what happened, on the endpoint a Prometheus
// server scrapes.
func TestE2EMetrics(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	base := e.startWithMetrics()
	const user = "metrics@example.com"
	pass := e.user(user)
	checkEndpoints(t, base)
	before, _ := scrapeMetrics(t, base)
	checkStore(t, before)
	refreshes := e.idp.Refreshes(user)

	sent := e2eMessage("metrics", user)
	if err := e.sendSMTP(user, pass, user, user, sent); err != nil {
		t.Fatalf("send through mailgate: %v", err)
	}
	waitMaildir(t, e.stack.Maildir(user), 1)
	e.idp.ExpireAccessTokens() // the next login refreshes
	c := e.loginIMAP(user, pass, nil)
	if _, err := c.Select("INBOX", &imap.SelectOptions{}).Wait(); err != nil {
		t.Fatal(err)
	}
	body := fetchBody(t, c, 1)
	if code := e.imapLoginCode(user, "wrong-password"); code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("wrong password: NO [%s]", code)
	}
	const victim = "victim@example.com"
	for range 2 {
		e.imapLoginCode(victim, "guess")
	}
	if code := e.imapLoginCode(victim, "guess"); code != imap.ResponseCodeUnavailable {
		t.Fatalf("login to a locked mailbox: NO [%s], want UNAVAILABLE", code)
	}

	if e.idp.Refreshes(user) == refreshes {
		t.Fatal("no token refresh after the access tokens expired")
	}
	after, text := scrapeMetrics(t, base)
	delta := func(name string, labels ...string) float64 {
		return after.get(t, name, labels...) - before.get(t, name, labels...)
	}
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mailgate_logins_total", []string{"proto", "imap", "result", "ok"}, 1},
		{"mailgate_logins_total", []string{"proto", "imap", "result", "failed"}, 3},
		{"mailgate_logins_total", []string{"proto", "imap", "result", "throttled"}, 1},
		{"mailgate_logins_total", []string{"proto", "smtp", "result", "ok"}, 1},
		{"mailgate_logins_total", []string{"proto", "imap", "result", "limit"}, 0},
		{"mailgate_upstream_login_duration_seconds", []string{"proto", "imap"}, 1},
		{"mailgate_upstream_login_duration_seconds", []string{"proto", "smtp"}, 1},
		{"mailgate_upstream_errors_total", []string{"proto", "imap", "kind", "refused"}, 0},
		{"mailgate_smtp_messages_total", []string{"result", "sent"}, 1},
		{"mailgate_smtp_message_bytes", nil, 1},
		{"mailgate_token_refreshes_total", []string{"result", "ok"}, float64(e.idp.Refreshes(user) - refreshes)},
		{"mailgate_token_refreshes_total", []string{"result", "relink"}, 0},
		{"mailgate_token_refresh_duration_seconds", nil, float64(e.idp.Refreshes(user) - refreshes)},
	} {
		if got := delta(tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s%v moved by %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	if got := after.get(t, "mailgate_sessions", "proto", "imap"); got != 1 {
		t.Errorf("mailgate_sessions{imap} = %v with one IMAP client logged in", got)
	}
	if got := delta("mailgate_relayed_bytes_total", "proto", "imap", "direction", "upstream_to_client"); got < float64(len(body)) {
		t.Errorf("relayed upstream_to_client moved by %v, less than the %d bytes FETCHed", got, len(body))
	}
	if got := delta("mailgate_relayed_bytes_total", "proto", "imap", "direction", "client_to_upstream"); got <= 0 {
		t.Errorf("relayed client_to_upstream moved by %v", got)
	}
	// SMTP counts the message data as read from the client.
	if got := delta("mailgate_relayed_bytes_total", "proto", "smtp", "direction", "client_to_upstream"); got < float64(len(sent)) {
		t.Errorf("relayed smtp client_to_upstream moved by %v, less than the %d-byte message", got, len(sent))
	}
	promtoolCheckMetrics(t, text)

	c.Logout().Wait()
	c.Close()
	waitGauge(t, base, "mailgate_sessions", 0, "proto", "imap")
	checkReadyAfterReload(t, e, base)
}

// checkReadyAfterReload: a reload whose new listener cannot open (its
// address is taken) makes /readyz 503 naming the listeners; a reload
// without it makes the daemon ready again.
func checkReadyAfterReload(t *testing.T, e *e2e, base string) {
	t.Helper()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	good, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), "imap:\n  listen:\n",
		fmt.Sprintf("imap:\n  listen:\n    - { address: %q, tls: implicit }\n", busy.Addr().String()), 1)
	reload := func(cfg string, wantCode int, wantLog string) {
		t.Helper()
		if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		n := strings.Count(e.d.logText(), wantLog)
		e.d.cmd.Process.Signal(syscall.SIGHUP)
		deadline := time.Now().Add(15 * time.Second)
		for strings.Count(e.d.logText(), wantLog) == n {
			if time.Now().After(deadline) {
				t.Fatalf("no %q after SIGHUP:\n%s", wantLog, e.d.logText())
			}
			time.Sleep(20 * time.Millisecond)
		}
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantCode || wantCode != http.StatusOK && !strings.Contains(string(body), "listeners") {
			t.Fatalf("/readyz after reload: %d %q, want %d", resp.StatusCode, body, wantCode)
		}
	}
	reload(bad, http.StatusServiceUnavailable, "a listener could not open")
	reload(string(good), http.StatusOK, "config reloaded")
}

// checkEndpoints: health and readiness on a running daemon, and 403 for a
// client outside metrics.allow.
func checkEndpoints(t *testing.T, base string) {
	t.Helper()
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + path)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	// 127.0.0.2 is loopback too, but not in metrics.allow.
	other := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	resp, err := other.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("GET /metrics from 127.0.0.2: %d, want 403", resp.StatusCode)
	}
}

// checkStore: one linked mailbox with one app password.
func checkStore(t *testing.T, s scrape) {
	t.Helper()
	for _, tt := range []struct {
		state string
		want  float64
	}{{"linked", 1}, {"needs_relink", 0}, {"unlinked", 0}} {
		if got := s.get(t, "mailgate_mailboxes", "state", tt.state); got != tt.want {
			t.Errorf("mailgate_mailboxes{state=%q} = %v, want %v", tt.state, got, tt.want)
		}
	}
	if got := s.get(t, "mailgate_app_passwords"); got != 1 {
		t.Errorf("mailgate_app_passwords = %v, want 1", got)
	}
	if s["mailgate_build_info"] == nil || s["go_goroutines"] == nil || s["process_open_fds"] == nil {
		t.Error("build info, Go or process collector missing")
	}
}

// waitGauge waits for a gauge to reach want: a session ends on the
// daemon's side after the client has gone.
func waitGauge(t *testing.T, base, name string, want float64, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, _ := scrapeMetrics(t, base)
		got := s.get(t, name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// promtoolCheckMetrics lints the exposition with Prometheus' own tool
// (naming, units, help texts).
func promtoolCheckMetrics(t *testing.T, text []byte) {
	t.Helper()
	needCommand(t, "promtool", "prometheus")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
