package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

func get(t *testing.T, h http.Handler, path, remote, accept string) (int, string, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.RemoteAddr = remote
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	body, _ := io.ReadAll(w.Result().Body)
	return w.Code, w.Header().Get("Content-Type"), string(body)
}

func TestHealthAndReadiness(t *testing.T) {
	var storeDown atomic.Bool
	m := New(&Options{Ready: []Check{
		{Name: "listeners", Check: func(context.Context) error { return nil }},
		{Name: "store", Check: func(context.Context) error {
			if storeDown.Load() {
				return errors.New("connection refused")
			}
			return nil
		}},
	}})
	h := m.Handler()
	if code, _, _ := get(t, h, "/healthz", "127.0.0.1:5000", ""); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}
	if code, _, _ := get(t, h, "/readyz", "127.0.0.1:5000", ""); code != http.StatusOK {
		t.Fatalf("/readyz = %d, want 200", code)
	}
	storeDown.Store(true)
	code, _, body := get(t, h, "/readyz", "127.0.0.1:5000", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "store") || strings.Contains(body, "listeners") {
		t.Fatalf("/readyz with the store down = %d %q, want 503 naming the store only", code, body)
	}
	if strings.Contains(body, "refused") {
		t.Fatalf("/readyz shows the error's details: %q", body)
	}
	storeDown.Store(false)
	if code, _, _ := get(t, h, "/readyz", "127.0.0.1:5000", ""); code != http.StatusOK {
		t.Fatalf("/readyz after recovery = %d", code)
	}
}

func TestMetricsFormats(t *testing.T) {
	h := New(&Options{}).Handler()
	code, ctype, body := get(t, h, "/metrics", "127.0.0.1:5000", "application/openmetrics-text; version=1.0.0")
	if code != http.StatusOK || !strings.HasPrefix(ctype, "application/openmetrics-text") ||
		!strings.HasSuffix(body, "# EOF\n") || !strings.Contains(body, "mailgate_logins_total") {
		t.Fatalf("OpenMetrics: %d %q", code, ctype)
	}
	code, ctype, body = get(t, h, "/metrics", "127.0.0.1:5000", "")
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/plain") || !strings.Contains(body, "mailgate_sessions{proto=\"imap\"} 0") {
		t.Fatalf("text format: %d %q", code, ctype)
	}
}

func TestAllow(t *testing.T) {
	h := New(&Options{Allow: []Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}}).Handler()
	for _, tt := range []struct {
		remote string
		want   int
	}{
		{"192.0.2.9:4000", http.StatusOK},
		{"[::ffff:192.0.2.9]:4000", http.StatusOK},
		{"[2001:db8::1]:4000", http.StatusOK},
		{"198.51.100.1:4000", http.StatusForbidden},
		{"127.0.0.1:4000", http.StatusForbidden},
		{"garbage", http.StatusForbidden},
	} {
		for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
			if code, _, _ := get(t, h, path, tt.remote, ""); code != tt.want {
				t.Errorf("%s from %s = %d, want %d", path, tt.remote, code, tt.want)
			}
		}
	}
}
