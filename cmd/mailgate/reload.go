package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"reflect"

	"mailgate/config"
	"mailgate/proxy"
	"mailgate/proxy/imap"
	"mailgate/proxy/pop3"
	"mailgate/proxy/smtp"
)

// frontSpec is a front end the config asks for, built but not started.
type frontSpec struct {
	key   string // everything its Options depend on; equal keys need no restart
	proto string
	l     config.Listener
	mode  proxy.TLSMode
	srv   server
	// build makes srv when the listener opens, for a front end that shows
	// what the listeners before it bound (the portal's client settings).
	build func() (server, error)
}

// frontKey is what a front end is made of. A listener whose key is
// unchanged at a reload keeps running; any change (address, TLS policy,
// certificate files, upstream, limits, PROXY protocol) gets a new front end
// for new sessions, while the old one's sessions continue.
// warmUpstreams is how many connected, pre-login upstream connections each
// IMAP listener keeps after a login, for the next one: with the upstream
// tens of milliseconds away they save the TCP and TLS round trips, so a
// login through mailgate is no slower than a direct one. The pool fills
// only after a client passed the app-password check and empties after
// imap.DefaultWarmMaxAge without logins.
const warmUpstreams = 2

func frontKey(cfg *config.Config, proto string, l config.Listener) string {
	k := struct {
		Proto         string
		Listener      config.Listener
		TLS           config.TLS
		Hostname      string
		Upstream      config.Upstream
		MaxSize       int64
		Limits        config.Limits
		ProxyProtocol config.ProxyProtocol
		Web           *webKey `json:",omitempty"`
	}{proto, l, cfg.TLS, cfg.Hostname, cfg.IMAP.Upstream, 0, cfg.Limits, cfg.ProxyProtocol, nil}
	switch proto {
	case proxy.ProtoSMTP:
		k.Upstream, k.MaxSize = cfg.SMTP.Upstream, cfg.SMTP.MaxMessageSize
	case proxy.ProtoPOP3:
		k.Upstream = cfg.POP3.Upstream
	case protoWeb:
		k.Upstream = config.Upstream{}
		k.Web = &webKey{Web: cfg.Web, Settings: clientSettings(cfg)}
	}
	b, _ := json.Marshal(k)
	return string(b)
}

// plan builds every front end cfg asks for without opening anything, so
// that a config with a bad upstream or TLS setting is refused whole.
func (d *daemon) plan(cfg *config.Config, certs *proxy.CertLoader, th *proxy.Throttle, lim *proxy.Limits) ([]frontSpec, error) {
	imapUp, err := upstream(cfg.IMAP.Upstream)
	if err != nil {
		return nil, fmt.Errorf("%s: imap.upstream: %w", cfg.File, err)
	}
	smtpUp, err := upstream(cfg.SMTP.Upstream)
	if err != nil {
		return nil, fmt.Errorf("%s: smtp.upstream: %w", cfg.File, err)
	}
	pop3Up, err := pop3Upstream(cfg)
	if err != nil {
		return nil, err
	}
	gate := proxy.NewGate(&proxy.GateOptions{Authenticator: d.auth, Throttle: th, Limits: lim,
		Sessions: &d.sessions, Meter: d.meter(), Logger: d.log})
	var specs []frontSpec
	add := func(proto string, l config.Listener, build func(*tls.Config) server) error {
		mode := tlsMode(l.TLS)
		tc, err := serverTLS(cfg, l, certs, d.log)
		if err != nil {
			return fmt.Errorf("%s: %s.listen: %w", cfg.File, proto, err)
		}
		specs = append(specs, frontSpec{key: frontKey(cfg, proto, l), proto: proto, l: l, mode: mode, srv: build(tc)})
		return nil
	}
	for _, l := range cfg.IMAP.Listen {
		err := add(proxy.ProtoIMAP, l, func(tc *tls.Config) server {
			return imap.New(&imap.Options{Gate: gate, Tokens: d.tokens, Upstream: imapUp,
				TLSConfig: tc, Limits: lim, Logger: d.log, Hostname: cfg.Hostname,
				HandshakeTimeout: cfg.Limits.TLSHandshakeTimeout, WarmUpstreams: warmUpstreams})
		})
		if err != nil {
			return nil, err
		}
	}
	for _, l := range cfg.SMTP.Listen {
		err := add(proxy.ProtoSMTP, l, func(tc *tls.Config) server {
			return smtp.New(&smtp.Options{Gate: gate, Tokens: d.tokens, Upstream: smtpUp,
				TLSConfig: tc, Limits: lim, Logger: d.log, Hostname: cfg.Hostname,
				HandshakeTimeout: cfg.Limits.TLSHandshakeTimeout, MaxMessageBytes: cfg.SMTP.MaxMessageSize,
				Messages: d.messages()})
		})
		if err != nil {
			return nil, err
		}
	}
	for _, l := range cfg.POP3.Listen {
		err := add(proxy.ProtoPOP3, l, func(tc *tls.Config) server {
			return pop3.New(&pop3.Options{Gate: gate, Tokens: d.tokens, Upstream: pop3Up,
				TLSConfig: tc, Limits: lim, Logger: d.log, Hostname: cfg.Hostname,
				HandshakeTimeout: cfg.Limits.TLSHandshakeTimeout})
		})
		if err != nil {
			return nil, err
		}
	}
	portal, err := d.planWeb(cfg, certs, th, lim)
	if err != nil {
		return nil, err
	}
	return append(specs, portal...), nil
}

// pop3Upstream is the POP3 upstream, read only when POP3 is on: with it
// off, a generic provider has no pop3.upstream.
func pop3Upstream(cfg *config.Config) (proxy.Upstream, error) {
	if len(cfg.POP3.Listen) == 0 {
		return proxy.Upstream{}, nil
	}
	up, err := upstream(cfg.POP3.Upstream)
	if err != nil {
		return up, fmt.Errorf("%s: pop3.upstream: %w", cfg.File, err)
	}
	return up, nil
}

// reload re-reads the config file (SIGHUP). An invalid file is refused and
// the running config stays. A valid one applies to new sessions: listeners,
// TLS policy, upstreams, limits, accounts.domains and shutdown_grace; live
// sessions continue. The certificate is re-read in any case.
func (d *daemon) reload() {
	cfg, err := loadConfig(d.cfg.File)
	if err != nil {
		d.log.Error("config reload refused; keeping the running config", "err", err)
		d.reloadCert()
		return
	}
	if err := d.reloadWith(cfg); err != nil {
		d.log.Error("config reload refused; keeping the running config", "err", err)
	}
}

func (d *daemon) reloadWith(cfg *config.Config) error {
	certs := d.certs
	if cfg.TLS.CertFile != d.cfg.TLS.CertFile || cfg.TLS.KeyFile != d.cfg.TLS.KeyFile {
		var err error
		if certs, err = loadCerts(cfg); err != nil {
			return err
		}
	} else {
		d.reloadCert()
	}
	th, lim := d.throttle, d.limits
	if !reflect.DeepEqual(cfg.Limits, d.cfg.Limits) {
		// New counters for new sessions; live ones keep their slots in the old.
		th, lim = newThrottle(cfg.Limits), newLimits(cfg.Limits)
	}
	specs, err := d.plan(cfg, certs, th, lim)
	if err != nil {
		return err
	}
	if err := d.reloadAlerts(d.cfg, cfg); err != nil {
		return err
	}
	d.warnRestart(cfg)
	if certs != d.certs {
		d.swapCerts(certs)
	}
	d.cfg, d.throttle, d.limits = cfg, th, lim
	d.level.Set(cfg.Log.SlogLevel())
	d.setSettings(cfg)
	d.auth.SetDomains(cfg.Accounts.Domains)
	err = d.apply(cfg, specs)
	d.obs.listenFailed.Store(err != nil) // /readyz
	if err != nil {
		d.log.Error("config reloaded, but a listener could not open", "err", err)
		return nil
	}
	d.log.Info("config reloaded", "listeners", len(d.fronts), "sessions", d.sessions.Len())
	return nil
}

// reloadCert re-reads the running certificate; a bad one keeps the old.
func (d *daemon) reloadCert() {
	if d.certs == nil {
		return
	}
	if err := d.certs.Reload(); err != nil {
		d.log.Error("certificate reload failed; keeping the old one", "err", err)
		return
	}
	d.log.Info("certificate reloaded")
}

// swapCerts serves and watches certs (nil: none) instead of the current
// certificate files.
func (d *daemon) swapCerts(certs *proxy.CertLoader) {
	if d.unwatch != nil {
		d.unwatch()
		d.unwatch = nil
	}
	d.certs = certs
	if certs != nil {
		ctx, cancel := context.WithCancel(context.Background())
		d.unwatch = cancel
		go certs.Watch(ctx, 0, d.log)
	}
}

// warnRestart names the changed settings that a reload cannot apply.
func (d *daemon) warnRestart(cfg *config.Config) {
	old := d.cfg
	for key, same := range map[string]bool{
		"store":                  old.Store == cfg.Store,
		"admin.socket":           old.Admin == cfg.Admin,
		"oauth":                  reflect.DeepEqual(old.OAuth, cfg.OAuth),
		"accounts.max_passwords": old.Accounts.MaxPasswords == cfg.Accounts.MaxPasswords,
		"log.format":             old.Log.Format == cfg.Log.Format,
		"metrics":                reflect.DeepEqual(old.Metrics, cfg.Metrics),
	} {
		if !same {
			d.log.Warn("config change needs a restart to apply", "key", key)
		}
	}
}
