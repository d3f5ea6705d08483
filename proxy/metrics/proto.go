package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"mailgate/proxy"
)

// protoMeters are one protocol's series, resolved once at New.
type protoMeters struct {
	logins   map[string]prometheus.Counter // by proxy.LoginResults
	sessions prometheus.Gauge
	preAuth  prometheus.Gauge
	relay    proxy.RelayCounters
	upLogin  prometheus.Observer
	upErrors map[string]prometheus.Counter // by proxy.UpstreamErrorKinds
}

func (m *Metrics) registerProtos() {
	logins := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailgate_logins_total",
		Help: "Logins with an app password, by protocol and result: ok, failed, throttled, unavailable, limit."},
		[]string{"proto", "result"})
	sessions := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailgate_sessions",
		Help: "Sessions that passed the password check and have not ended."}, []string{"proto"})
	preAuth := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailgate_preauth_connections",
		Help: "Open connections that have not logged in."}, []string{"proto"})
	relayed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailgate_relayed_bytes_total",
		Help: "Bytes relayed after login, counted as they move, by direction (SMTP: the message data, client to upstream)."},
		[]string{"proto", "direction"})
	upLogin := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mailgate_upstream_login_duration_seconds",
		Help:    "Upstream logins with a token (connect, TLS, SASL, mailbox probe), failed ones included.",
		Buckets: loginBuckets}, []string{"proto"})
	upErrors := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailgate_upstream_errors_total",
		Help: "Failed upstream logins, by kind: dial, tls, timeout, refused, protocol."}, []string{"proto", "kind"})
	m.reg.MustRegister(logins, sessions, preAuth, relayed, upLogin, upErrors)
	m.protos = map[string]*protoMeters{}
	for _, p := range Protos {
		pm := &protoMeters{sessions: sessions.WithLabelValues(p), preAuth: preAuth.WithLabelValues(p),
			upLogin: upLogin.WithLabelValues(p), logins: map[string]prometheus.Counter{},
			upErrors: map[string]prometheus.Counter{}}
		for _, r := range proxy.LoginResults {
			pm.logins[r] = logins.WithLabelValues(p, r)
		}
		for _, k := range proxy.UpstreamErrorKinds {
			pm.upErrors[k] = upErrors.WithLabelValues(p, k)
		}
		pm.relay = proxy.RelayCounters{ClientToUpstream: relayed.WithLabelValues(p, ClientToUpstream),
			UpstreamToClient: relayed.WithLabelValues(p, UpstreamToClient)}
		m.protos[p] = pm
	}
}

// Login counts one login (proxy.Meter).
func (m *Metrics) Login(proto, result string) {
	if pm := m.protos[proto]; pm != nil {
		if c := pm.logins[result]; c != nil {
			c.Inc()
		}
	}
}

// Sessions moves the live session gauge (proxy.Meter).
func (m *Metrics) Sessions(proto string, delta int) {
	if pm := m.protos[proto]; pm != nil {
		pm.sessions.Add(float64(delta))
	}
}

// PreAuth moves the pre-auth connection gauge (proxy.Meter).
func (m *Metrics) PreAuth(proto string, delta int) {
	if pm := m.protos[proto]; pm != nil {
		pm.preAuth.Add(float64(delta))
	}
}

// UpstreamLogin records one upstream login and, if it failed, its kind
// (proxy.Meter).
func (m *Metrics) UpstreamLogin(proto string, took time.Duration, err error) {
	pm := m.protos[proto]
	if pm == nil {
		return
	}
	pm.upLogin.Observe(took.Seconds())
	if err != nil {
		pm.upErrors[proxy.UpstreamErrorKind(err)].Inc()
	}
}

// Relay returns proto's relayed byte counters (proxy.Meter).
func (m *Metrics) Relay(proto string) proxy.RelayCounters {
	if pm := m.protos[proto]; pm != nil {
		return pm.relay
	}
	return proxy.RelayCounters{}
}
