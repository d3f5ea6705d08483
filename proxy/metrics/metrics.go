// Package metrics exposes mailgate's Prometheus metrics and health checks:
// it implements proxy.Meter (logins, sessions, pre-auth connections,
// relayed bytes, upstream logins), smtp.MessageMeter and the OAuth
// manager's OnToken hook, counts mailboxes from the store at scrape time,
// and serves /metrics, /healthz and /readyz (docs/monitoring.md).
//
// Every series is created at New, so each exists at 0 from the first
// scrape, and the hot paths (a login, a relayed byte) only add to an
// atomic counter found in a map that never changes after New: no lock
// shared by all sessions.
package metrics

import (
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"mailgate/proxy"
	"mailgate/proxy/smtp"
)

// Protos are the protocols that get series; others (the portal) are not
// counted.
var Protos = []string{proxy.ProtoIMAP, proxy.ProtoSMTP, proxy.ProtoPOP3}

// TokenResults are the results the OAuth manager's OnToken reports.
var TokenResults = []string{"ok", "relink", "transient", "config"}

// Relay directions, the direction label of mailgate_relayed_bytes_total.
const (
	ClientToUpstream = "client_to_upstream"
	UpstreamToClient = "upstream_to_client"
)

// Buckets. An upstream login is a TCP connect, a TLS handshake and a
// SASL exchange with Microsoft or Google: tens of milliseconds near them,
// seconds when they are slow, 30 s at most (proxy.LoginTimeout). Token
// requests are bounded by the OAuth manager's 30 s flight. Messages range
// from a one-line notice to Exchange Online's 150 MB.
var (
	loginBuckets   = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	messageBuckets = prometheus.ExponentialBuckets(1024, 4, 10) // 1 KiB .. 256 MiB
)

// Options configure Metrics. Zero fields get defaults.
type Options struct {
	// Version is mailgate's version, the version label of
	// mailgate_build_info.
	Version string
	// Mailboxes counts the store's mailboxes for mailgate_mailboxes and
	// mailgate_app_passwords; nil leaves both out.
	Mailboxes func() (MailboxCounts, error)
	// MailboxesFor is how long one count is reused, so that frequent
	// scrapes cannot load the store; default DefaultMailboxesFor.
	MailboxesFor time.Duration
	// Ready are the readiness checks of /readyz.
	Ready []Check
	// Allow lists the client networks allowed to read the endpoints; empty
	// allows all (cmd allows that only on a loopback listener).
	Allow  []Prefix
	Logger *slog.Logger
	Now    func() time.Time // for tests; default time.Now
}

// Metrics holds mailgate's collectors in a registry of its own (not the
// global default, so nothing else registers into it unseen). It is safe
// for concurrent use.
type Metrics struct {
	o      Options
	log    *slog.Logger
	reg    *prometheus.Registry
	protos map[string]*protoMeters // read-only after New

	tokens       map[string]prometheus.Counter
	tokenTime    prometheus.Observer
	messages     map[string]prometheus.Counter
	messageBytes prometheus.Observer
}

var (
	_ proxy.Meter       = (*Metrics)(nil)
	_ smtp.MessageMeter = (*Metrics)(nil)
)

// New returns Metrics with every series created.
func New(opts *Options) *Metrics {
	m := &Metrics{o: *opts, log: opts.Logger, reg: prometheus.NewRegistry()}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.o.Now == nil {
		m.o.Now = time.Now
	}
	m.reg.MustRegister(collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.registerBuildInfo()
	m.registerProtos()
	m.registerTokens()
	m.registerMessages()
	if m.o.Mailboxes != nil {
		m.reg.MustRegister(newMailboxCollector(&m.o, m.log))
	}
	return m
}

// Registry returns the registry the metrics are in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func (m *Metrics) registerBuildInfo() {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailgate_build_info",
		Help: "Always 1; the labels name the running build."}, []string{"version", "goversion"})
	g.WithLabelValues(m.o.Version, runtime.Version()).Set(1)
	m.reg.MustRegister(g)
}

func (m *Metrics) registerTokens() {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailgate_token_refreshes_total",
		Help: "Token requests to the identity provider (refresh or app grant, retries included), by result."},
		[]string{"result"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mailgate_token_refresh_duration_seconds",
		Help: "How long token requests to the identity provider took, retries included.", Buckets: loginBuckets})
	m.tokens = children(c, TokenResults)
	m.tokenTime = h
	m.reg.MustRegister(c, h)
}

func (m *Metrics) registerMessages() {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailgate_smtp_messages_total",
		Help: "Messages sent through SMTP DATA, by the reply class the client got: sent, deferred, rejected."},
		[]string{"result"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mailgate_smtp_message_bytes",
		Help: "Size of messages sent through SMTP DATA, as read from the client.", Buckets: messageBuckets})
	m.messages = children(c, smtp.MessageResults)
	m.messageBytes = h
	m.reg.MustRegister(c, h)
}

// children resolves one child per label value, once.
func children(v *prometheus.CounterVec, values []string) map[string]prometheus.Counter {
	out := make(map[string]prometheus.Counter, len(values))
	for _, val := range values {
		out[val] = v.WithLabelValues(val)
	}
	return out
}

// OnToken is the OAuth manager's Options.OnToken.
func (m *Metrics) OnToken(result string, took time.Duration) {
	if c := m.tokens[result]; c != nil {
		c.Inc()
		m.tokenTime.Observe(took.Seconds())
	}
}

// Message counts one SMTP message (smtp.MessageMeter).
func (m *Metrics) Message(result string, size int64) {
	if c := m.messages[result]; c != nil {
		c.Inc()
		m.messageBytes.Observe(float64(size))
	}
}
