package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"mailgate/proxy"
	"mailgate/proxy/metrics"
	"mailgate/proxy/oauth"
	"mailgate/proxy/smtp"
	"mailgate/store"
)

// metricsReadHeaderTimeout bounds a scraper's request headers: the
// endpoint is plain HTTP and must not be held open by a slow client.
const metricsReadHeaderTimeout = 10 * time.Second

// errListeners and errStopping are /readyz's "listeners" failures (the
// details go to the log, never to the prober).
var (
	errListeners = errors.New("a listener of the config could not open")
	errStopping  = errors.New("shutting down")
)

// observability is the daemon's metrics endpoint; its zero value is off.
type observability struct {
	m            *metrics.Metrics // nil: metrics off
	srv          *http.Server
	listenFailed atomic.Bool // the last apply left a listener closed
	stopping     atomic.Bool
}

// newMetrics builds the collectors when the config has a metrics section;
// they exist before the front ends and the OAuth manager, which report to
// them.
func (d *daemon) newMetrics(st *store.Store) {
	c := d.cfg.Metrics
	if !c.Enabled() {
		return
	}
	d.obs.m = metrics.New(&metrics.Options{Version: version, Mailboxes: mailboxCounts(st),
		Allow: c.Allow, Logger: d.log, Ready: []metrics.Check{
			{Name: "listeners", Check: d.listenersReady},
			{Name: "store", Check: storeReady(st)},
		}})
}

// metricsHook gives the OAuth manager the token request counter.
func (d *daemon) metricsHook(o *oauth.Options) {
	if d.obs.m != nil {
		o.OnToken = d.obs.m.OnToken
	}
}

// meter is the login step's Meter; nil (not a nil *Metrics) when off.
func (d *daemon) meter() proxy.Meter {
	if d.obs.m == nil {
		return nil
	}
	return d.obs.m
}

// messages is the SMTP front ends' MessageMeter; nil when off.
func (d *daemon) messages() smtp.MessageMeter {
	if d.obs.m == nil {
		return nil
	}
	return d.obs.m
}

// serveMetrics opens the metrics listener. It runs after the mail
// listeners opened, so that /readyz answers only once they are up.
func (d *daemon) serveMetrics() error {
	if d.obs.m == nil {
		return nil
	}
	ln, err := net.Listen("tcp", d.cfg.Metrics.Listen)
	if err != nil {
		return fmt.Errorf("%s: metrics.listen: %w", d.cfg.File, err)
	}
	d.obs.srv = &http.Server{Handler: d.obs.m.Handler(), ReadHeaderTimeout: metricsReadHeaderTimeout,
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelDebug)}
	d.log.Info("listening", "proto", "metrics", "address", ln.Addr().String(), "tls", string(proxy.TLSNone))
	go func() {
		if err := d.obs.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics listener failed", "err", err)
		}
	}()
	return nil
}

// closeMetrics stops the metrics listener, last, so that a scraper sees
// the sessions drain.
func (d *daemon) closeMetrics() {
	if d.obs.srv != nil {
		d.obs.srv.Close()
	}
}

// listenersReady fails while the daemon stops and after a reload left a
// listener closed (its address taken, say).
func (d *daemon) listenersReady(context.Context) error {
	switch {
	case d.obs.stopping.Load():
		return errStopping
	case d.obs.listenFailed.Load():
		return errListeners
	}
	return nil
}

// storeReady asks the store whether it answers: PostgreSQL must answer a
// query within the store's ping timeout; bbolt fails only once closed.
func storeReady(st *store.Store) func(context.Context) error {
	return st.Ping
}

// mailboxCounts counts the store's mailboxes by link state for the
// mailgate_mailboxes gauge: an account row without a provider has app
// passwords but no refresh token ("unlinked").
func mailboxCounts(st *store.Store) func() (metrics.MailboxCounts, error) {
	return func() (metrics.MailboxCounts, error) {
		accounts, err := st.Accounts()
		if err != nil {
			return metrics.MailboxCounts{}, err
		}
		var n metrics.MailboxCounts
		passwords := map[string]int{}
		for _, a := range accounts {
			switch {
			case a.Provider == "":
				n.Unlinked++
			case a.NeedsRelink != "":
				n.NeedsRelink++
			default:
				n.Linked++
			}
			passwords[a.Mailbox] = a.Passwords
		}
		for _, p := range passwords {
			n.AppPasswords += p
		}
		return n, nil
	}
}
