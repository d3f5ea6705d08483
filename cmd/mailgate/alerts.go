package main

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"mailgate/config"
	"mailgate/proxy"
	"mailgate/proxy/alerts"
	"mailgate/proxy/oauth"
	"mailgate/proxy/smtp"
	"mailgate/store"
)

// The store tells the OAuth manager what it recorded, so a dead link is
// announced once and not again after a restart.
var _ oauth.LinkStateReader = (*store.Store)(nil)

// alertsDrain is how long a stopping daemon still tries to deliver the
// queued alerts: the queues live in memory, and systemd's stop timeout
// (90 s by default) bounds the whole shutdown.
const alertsDrain = 5 * time.Second

// newAlerts turns the alerts section into a Notifier; nil when neither a
// webhook nor a mail sender is configured. The mail goes through the SMTP
// upstream logged in as alerts.mail.from with tokens(), the daemon's token
// source, which exists only once the OAuth manager does.
func newAlerts(cfg *config.Config, tokens func() proxy.TokenSource, log *slog.Logger) (*alerts.Notifier, error) {
	a := cfg.Alerts
	if a.Webhook.URL == "" && a.Mail.From == "" {
		return nil, nil
	}
	opts := &alerts.Options{WebhookURL: a.Webhook.URL, WebhookSecret: a.Webhook.Secret, Logger: log}
	if a.Mail.From != "" {
		up, err := upstream(cfg.SMTP.Upstream)
		if err != nil {
			return nil, fmt.Errorf("%s: smtp.upstream: %w", cfg.File, err)
		}
		send := func(ctx context.Context, from, to string, msg []byte) error {
			return smtp.Send(ctx, &smtp.SendOptions{Tokens: tokens(), Upstream: up, Hostname: cfg.Hostname}, from, to, msg)
		}
		opts.Mail = &alerts.MailOptions{From: a.Mail.From, PortalURL: cfg.Web.PublicURL, Send: send}
	}
	return alerts.New(opts), nil
}

// alertHook lets the OAuth manager tell the daemon's Notifier, whichever
// it is then, of link changes.
func (d *daemon) alertHook(o *oauth.Options) {
	o.OnLinkState = d.notify
}

// notify tells the current Notifier (none when alerts are off) of a link
// change.
func (d *daemon) notify(mailbox, state, reason string) {
	if n := d.alerts.Load(); n != nil {
		n.Notify(mailbox, state, reason)
	}
}

// reloadAlerts puts a Notifier for cfg in place when what it is built from
// changed (the alerts section, or the SMTP upstream, hostname and portal
// address its mail uses): a rotated webhook secret or a new receiver
// applies without a restart. The old one delivers what it has queued, in
// the background, within alertsDrain. The once-a-day limit of user mails
// starts afresh with the new one.
func (d *daemon) reloadAlerts(old, cfg *config.Config) error {
	if reflect.DeepEqual(old.Alerts, cfg.Alerts) && reflect.DeepEqual(old.SMTP.Upstream, cfg.SMTP.Upstream) &&
		old.Hostname == cfg.Hostname && old.Web.PublicURL == cfg.Web.PublicURL {
		return nil
	}
	n, err := newAlerts(cfg, func() proxy.TokenSource { return d.tokens }, d.log)
	if err != nil {
		return err
	}
	prev := d.alerts.Swap(n)
	if prev != nil {
		d.drains.Go(func() { d.drainAlerts(prev, "alerts: some queued before the reload were not delivered") })
	}
	if n != nil || prev != nil { // not for a hostname change with alerts off
		d.log.Info("alerts: reloaded", "webhook", cfg.Alerts.Webhook.URL != "", "mail", cfg.Alerts.Mail.From != "")
	}
	if cfg.Alerts.Mail.From != old.Alerts.Mail.From {
		d.checkMailFrom(cfg, d.store, d.oauth)
	}
	return nil
}

// closeAlerts delivers what it can of the queued alerts, then stops. It
// also waits for the Notifiers replaced at reloads to deliver theirs, so
// that none is cut off when the daemon exits or closes the store.
func (d *daemon) closeAlerts() {
	if n := d.alerts.Swap(nil); n != nil {
		d.drains.Go(func() { d.drainAlerts(n, "alerts: some were not delivered before the daemon stopped") })
	}
	d.drains.Wait()
}

// drainAlerts gives n alertsDrain to deliver its queue, then stops it.
func (d *daemon) drainAlerts(n *alerts.Notifier, failed string) {
	ctx, cancel := context.WithTimeout(context.Background(), alertsDrain)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		d.log.Warn(failed, "err", err)
	}
}

// wireAlerts lets the admin operations tell the Notifier of unlinks, and
// checks alerts.mail.from (checkMailFrom).
func (d *daemon) wireAlerts(s *service) {
	s.onLinkState = d.notify
	d.checkMailFrom(d.cfg, s.store, s.oauth)
}

// checkMailFrom warns, at start and at a reload that changes it, when
// alerts.mail.from cannot send: with the delegated flow it needs a link of
// its own, or the first dead link would go unmailed, the silent failure
// alerts are for.
func (d *daemon) checkMailFrom(cfg *config.Config, st *store.Store, m *oauth.Manager) {
	from := cfg.Alerts.Mail.From
	if from == "" || m == nil || cfg.OAuth.Flow == config.FlowApp {
		return
	}
	linked, relink, err := st.LinkState(m.ProviderName(), from)
	switch {
	case err != nil:
		d.log.Warn("alerts: cannot read the link of alerts.mail.from", "user", from, "err", err)
	case !linked:
		d.log.Warn("alerts: alerts.mail.from is not linked, so no mail can be sent; link it with: mailgate account link "+from, "user", from)
	case relink != "":
		d.log.Warn("alerts: alerts.mail.from needs linking again, so no mail can be sent", "user", from, "reason", relink)
	}
}
