package metrics

import (
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMailboxesFor is how long a mailbox count is reused: the count
// reads every account in the store, and a scrape every few seconds (or
// many scrapers) must not turn into that much store load.
const DefaultMailboxesFor = 30 * time.Second

// Mailbox states, the state label of mailgate_mailboxes.
const (
	StateLinked      = "linked"       // a refresh token the provider has not refused
	StateNeedsRelink = "needs_relink" // the provider refused the refresh token
	StateUnlinked    = "unlinked"     // app passwords but no refresh token
)

// MailboxCounts are the store's mailboxes by link state, and the app
// passwords of all of them. A mailbox is "unlinked" when it has app
// passwords but no refresh token (never linked, or unlinked since); in
// the app flow no mailbox has one, so all count as unlinked there.
type MailboxCounts struct {
	Linked, NeedsRelink, Unlinked int
	AppPasswords                  int
}

// mailboxCollector counts at scrape time, at most once per MailboxesFor.
type mailboxCollector struct {
	count     func() (MailboxCounts, error)
	every     time.Duration
	now       func() time.Time
	log       *slog.Logger
	mailboxes *prometheus.Desc
	passwords *prometheus.Desc

	mu   sync.Mutex // scrapes only, never a login
	last MailboxCounts
	at   time.Time // of last; zero: none yet
}

func newMailboxCollector(o *Options, log *slog.Logger) *mailboxCollector {
	every := o.MailboxesFor
	if every <= 0 {
		every = DefaultMailboxesFor
	}
	return &mailboxCollector{count: o.Mailboxes, every: every, now: o.Now, log: log,
		mailboxes: prometheus.NewDesc("mailgate_mailboxes",
			"Mailboxes in the store by link state: linked, needs_relink, unlinked (app passwords but no refresh token).",
			[]string{"state"}, nil),
		passwords: prometheus.NewDesc("mailgate_app_passwords", "App passwords in the store.", nil, nil)}
}

func (c *mailboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.mailboxes
	ch <- c.passwords
}

// Collect reports the last count, counting again when it is older than
// every. When the store cannot be read the last count is kept (and the
// failure logged; /readyz reports the store); with none yet, nothing is
// reported.
func (c *mailboxCollector) Collect(ch chan<- prometheus.Metric) {
	n, ok := c.counts()
	if !ok {
		return
	}
	for _, s := range []struct {
		state string
		n     int
	}{{StateLinked, n.Linked}, {StateNeedsRelink, n.NeedsRelink}, {StateUnlinked, n.Unlinked}} {
		ch <- prometheus.MustNewConstMetric(c.mailboxes, prometheus.GaugeValue, float64(s.n), s.state)
	}
	ch <- prometheus.MustNewConstMetric(c.passwords, prometheus.GaugeValue, float64(n.AppPasswords))
}

func (c *mailboxCollector) counts() (MailboxCounts, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.at.IsZero() && now.Sub(c.at) < c.every {
		return c.last, true
	}
	n, err := c.count()
	if err != nil {
		c.log.Error("metrics: counting mailboxes", "err", err)
		return c.last, !c.at.IsZero()
	}
	c.last, c.at = n, now
	return n, true
}
