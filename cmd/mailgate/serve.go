package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"mailgate/config"
	"mailgate/proxy"
	"mailgate/proxy/admin"
	"mailgate/proxy/alerts"
	"mailgate/proxy/backend"
	"mailgate/proxy/oauth"
	"mailgate/store"
)

// server is what the IMAP, SMTP, POP3 and web front ends have in common.
type server interface {
	Serve(ln net.Listener, mode proxy.TLSMode) error
	Close() error
	Shutdown(ctx context.Context) error
}

// daemon is a running mailgate.
type daemon struct {
	cfg      *config.Config
	log      *slog.Logger
	level    slog.LevelVar // log.level, which a reload moves
	store    *store.Store
	certs    *proxy.CertLoader
	sessions proxy.Registry // every session that passed its password check
	auth     *backend.Authenticator
	adminSvc *admin.Service // the admin operations: the socket's and the portal's
	oauth    *oauth.Manager
	oauthCfg config.OAuth // the oauth section oauth was built from: a change needs a restart
	tokens   proxy.TokenSource
	alerts   atomic.Pointer[alerts.Notifier] // link alerts (webhook, mail); nil when off
	drains   sync.WaitGroup                  // Notifiers replaced at a reload, delivering their queue
	throttle *proxy.Throttle                 // one for every protocol: switching protocol gains a guesser nothing
	limits   *proxy.Limits
	obs      observability // the metrics endpoint; off without a metrics section
	admin    net.Listener
	changes  *changes           // the shared store's change feed -> sessions
	unwatch  context.CancelFunc // stops the certificate watcher
	unfeed   context.CancelFunc // stops re-checking sessions after a feed outage
	hup      chan os.Signal     // SIGHUP: reload
	// settings are the client settings of the running config, which the
	// admin socket's goroutines read while a reload replaces them.
	settings atomic.Pointer[admin.Settings]

	// fronts are the front ends serving now, by frontKey; retired ones
	// stopped accepting at a reload but may still have sessions, which
	// stop waits for.
	fronts  map[string]*front
	retired []server
	bound   []boundListener // what the listeners really bound, for -dev's banner
}

// boundListener is one open listener.
type boundListener struct {
	proto string
	mode  proxy.TLSMode
	addr  net.Addr
}

func cmdServe(e *env, args []string) error {
	f := newFlags("serve", false)
	dev := f.Bool("dev", false, "run on loopback with a built-in demo upstream and identity provider")
	devHost := f.String("dev-listen", "127.0.0.1", "with -dev: loopback `ADDRESS` to listen on")
	devPorts := f.String("dev-ports", defaultDevPorts, "with -dev: `PORTS` for IMAPS, IMAP+STARTTLS, SMTPS, SMTP+STARTTLS, web portal (HTTPS), POP3S, POP3+STLS")
	if _, err := f.parse(args, exactly(0), "[-config FILE | -dev]"); err != nil {
		return err
	}
	if *dev {
		if f.config != "" {
			return usageErrorf("serve: -dev uses built-in settings; drop -config")
		}
		return serveDev(e, *devHost, *devPorts)
	}
	cfg, err := loadConfig(f.config)
	if err != nil {
		return err
	}
	d := &daemon{cfg: cfg}
	d.level.Set(cfg.Log.SlogLevel())
	d.log = newLoggerAt(cfg.Log.Format, &d.level, e.stderr)
	if err := d.start(); err != nil {
		d.stop()
		return err
	}
	return d.wait(e.ctx)
}

// start opens the store and the admin socket, then the listeners.
func (d *daemon) start() error {
	d.catchHUP()
	err := d.openStore()
	if err != nil {
		return err
	}
	st := d.store
	d.newMetrics(st)
	d.auth = backend.NewAuthenticator(st, d.cfg.Accounts.Domains)
	n, err := newAlerts(d.cfg, func() proxy.TokenSource { return d.tokens }, d.log)
	if err != nil {
		return err
	}
	d.alerts.Store(n)
	svc := newService(d.cfg, st, &d.sessions, d.log, d.alertHook, d.metricsHook)
	d.wireAlerts(svc)
	svc.domains = d.auth.Domains // accounts.domains applies at a reload
	d.setSettings(d.cfg)
	svc.settings = d.currentSettings // and so do the listeners password create shows
	if svc.oauth == nil {
		_, err := newOAuth(d.cfg, st, d.log)
		return fmt.Errorf("%s: oauth: %w", d.cfg.File, err)
	}
	certs, err := loadCerts(d.cfg)
	if err != nil {
		return err
	}
	d.swapCerts(certs)
	if d.admin, err = listenAdmin(d.cfg.Admin.Socket); err != nil {
		return err
	}
	d.adminSvc, d.oauth, d.oauthCfg = svc.admin(), svc.oauth, d.cfg.OAuth
	d.tokens = backend.NewTokens(svc.oauth) // before any request: the alerts' mail uses it
	d.changes.oauth.Store(svc.oauth)
	go serveAdmin(d.admin, d.adminSvc, d.log)
	d.throttle, d.limits = newThrottle(d.cfg.Limits), newLimits(d.cfg.Limits)
	specs, err := d.plan(d.cfg, d.certs, d.throttle, d.limits)
	if err != nil {
		return err
	}
	if err := d.apply(d.cfg, specs); err != nil {
		return err
	}
	return d.serveMetrics()
}

// catchHUP catches SIGHUP for reloads. It is called before anything
// opens, so that one sent as soon as the daemon answers cannot kill it
// (its default action).
func (d *daemon) catchHUP() {
	d.hup = make(chan os.Signal, 1)
	signal.Notify(d.hup, syscall.SIGHUP)
}

// openStore opens the store with its change feed (postgres: changes made
// by other instances and the CLI) applied to the session registry.
func (d *daemon) openStore() error {
	d.changes = newChanges(&d.sessions, d.cfg.OAuth.Flow == config.FlowDelegated, d.log)
	st, err := openStore(d.cfg, d.log, d.changes.apply)
	if err != nil {
		return err
	}
	d.store = st
	d.changes.store.Store(st)
	ctx, cancel := context.WithCancel(context.Background())
	d.unfeed = cancel
	go d.changes.run(ctx)
	return nil
}

// wait runs until ctx ends (SIGTERM, SIGINT), reloading on SIGHUP, then
// shuts down gracefully.
func (d *daemon) wait(ctx context.Context) error {
	for {
		select {
		case <-d.hup:
			d.reload()
		case <-ctx.Done():
			d.log.Info("shutting down", "sessions", d.sessions.Len(), "grace", d.cfg.ShutdownGrace)
			return d.stop()
		}
	}
}

// stop closes the admin socket, lets sessions end within the grace period
// (idle IMAP sessions get BYE at once, SMTP transactions finish), and closes
// the store last so coalesced "last used" data is written.
func (d *daemon) stop() error {
	if d.hup != nil {
		// Caught (and left unread) until the store is closed: stopped
		// earlier, a SIGHUP during the grace period would take its default
		// action and kill the daemon, cutting the sessions and losing the
		// last-used times not yet written.
		defer signal.Stop(d.hup)
	}
	d.obs.stopping.Store(true) // /readyz: 503 while sessions drain
	if d.admin != nil {
		d.admin.Close()
	}
	d.swapCerts(nil)
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownGrace)
	defer cancel()
	servers := d.retired
	for _, f := range d.fronts {
		servers = append(servers, f.srv)
	}
	// In parallel: each front end stops accepting at once, then waits.
	errs := make([]error, len(servers)+1)
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() { errs[i] = s.Shutdown(ctx) })
	}
	wg.Wait()
	// Sessions still busy at the end of the grace period (a long FETCH or
	// DATA) were cut: that is what the grace period is for, and such a stop
	// is still a clean one (exit 0, or systemd marks the unit failed).
	for i, err := range errs[:len(servers)] {
		if errors.Is(err, context.DeadlineExceeded) {
			d.log.Warn("sessions still open after the grace period were closed", "grace", d.cfg.ShutdownGrace)
			errs[i] = nil
		}
	}
	if d.unfeed != nil {
		d.unfeed()
	}
	d.closeAlerts() // before the store: the mail to users needs tokens
	d.closeMetrics()
	if d.store != nil {
		errs[len(servers)] = d.store.Close()
	}
	return errors.Join(errs...)
}
