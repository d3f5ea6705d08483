package metrics

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Prefix is a client network allowed to read the endpoints.
type Prefix = netip.Prefix

// Check is one named readiness check of /readyz: nil means ready.
type Check struct {
	Name  string // "listeners", "store": shown in /readyz's answer
	Check func(ctx context.Context) error
}

// readyTimeout bounds all readiness checks of one /readyz request: a
// store that hangs is as unready as one that fails, and the prober must
// get an answer before its own timeout (Kubernetes' default is 1 s, but
// Prometheus' blackbox exporter and systemd watchers wait longer).
const readyTimeout = 3 * time.Second

// Handler serves /metrics (the OpenMetrics format when the scraper asks
// for it, else the text format), /healthz (200 while the process serves
// HTTP) and /readyz (200 when every Check passes, else 503 naming the
// failed ones; details go to the log). Clients outside Options.Allow get
// 403.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true, ErrorLog: slogPrinter{m}, Timeout: 10 * time.Second}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", m.ready)
	return m.allow(mux)
}

func (m *Metrics) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	var failed []string
	for _, c := range m.o.Ready {
		if err := c.Check(ctx); err != nil {
			m.log.Warn("not ready", "check", c.Name, "err", err)
			failed = append(failed, c.Name)
		}
	}
	if len(failed) > 0 {
		http.Error(w, "not ready: "+strings.Join(failed, ", "), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// allow refuses clients outside Options.Allow with 403.
func (m *Metrics) allow(next http.Handler) http.Handler {
	if len(m.o.Allow) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !m.allowed(r.RemoteAddr) {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (m *Metrics) allowed(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range m.o.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// slogPrinter sends promhttp's errors to the log.
type slogPrinter struct{ m *Metrics }

func (p slogPrinter) Println(v ...any) {
	p.m.log.Error("metrics: serving /metrics", "err", fmt.Sprint(v...))
}
