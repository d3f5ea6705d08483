package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"mailgate/config"
	"mailgate/proxy"
	"mailgate/proxy/imap"
	"mailgate/proxy/smtp"
	"mailgate/store"
)

// shutdownGrace is how long SIGTERM waits for sessions to end by themselves.
const shutdownGrace = 30 * time.Second

// server is what the IMAP and SMTP front ends have in common.
type server interface {
	Serve(ln net.Listener, mode proxy.TLSMode) error
	Shutdown(ctx context.Context) error
}

// daemon is a running mailgate.
type daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	store   *store.Store
	certs   *proxy.CertLoader
	tracker proxy.Tracker
	servers []server
	bound   []boundListener // what the listeners really bound, for -dev's banner
	admin   net.Listener
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
	devPorts := f.String("dev-ports", defaultDevPorts, "with -dev: `PORTS` for IMAPS, IMAP+STARTTLS, SMTPS, SMTP+STARTTLS")
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
	d := &daemon{cfg: cfg, log: newLogger(cfg.Log, e.stderr)}
	if err := d.start(); err != nil {
		d.stop()
		return err
	}
	return d.wait(e.ctx)
}

// start opens the store and the admin socket, then the listeners.
func (d *daemon) start() error {
	st, err := openStore(d.cfg, d.log)
	if err != nil {
		return err
	}
	d.store = st
	svc := newService(d.cfg, st, &d.tracker, d.log)
	if svc.oauth == nil {
		_, err := newOAuth(d.cfg, st, d.log)
		return fmt.Errorf("%s: oauth: %w", d.cfg.File, err)
	}
	if d.certs, err = loadCerts(d.cfg); err != nil {
		return err
	}
	if d.admin, err = listenAdmin(d.cfg.Admin.Socket); err != nil {
		return err
	}
	go serveAdmin(d.admin, svc, d.log)
	auth := &authenticator{store: st, domains: d.cfg.Accounts.Domains}
	return d.listen(auth, tokenSource{m: svc.oauth})
}

// listen starts one front end per listener, so each has its own TLS policy.
func (d *daemon) listen(auth proxy.Authenticator, tokens proxy.TokenSource) error {
	imapUp, err := upstream(d.cfg.IMAP.Upstream)
	if err != nil {
		return fmt.Errorf("%s: imap.upstream: %w", d.cfg.File, err)
	}
	smtpUp, err := upstream(d.cfg.SMTP.Upstream)
	if err != nil {
		return fmt.Errorf("%s: smtp.upstream: %w", d.cfg.File, err)
	}
	// One Throttle and one Limits for both protocols: a guesser cannot
	// double its rate by switching protocol.
	throttle, limits := newThrottle(d.cfg.Limits), newLimits(d.cfg.Limits)
	for _, l := range d.cfg.IMAP.Listen {
		err := d.serve("imap", l, func(tc *tls.Config) server {
			return imap.New(&imap.Options{Authenticator: auth, Tokens: tokens, Upstream: imapUp,
				TLSConfig: tc, Tracker: &d.tracker, Logger: d.log, Hostname: d.cfg.Hostname,
				Throttle: throttle, Limits: limits})
		})
		if err != nil {
			return err
		}
	}
	for _, l := range d.cfg.SMTP.Listen {
		err := d.serve("smtp", l, func(tc *tls.Config) server {
			return smtp.New(&smtp.Options{Authenticator: auth, Tokens: tokens, Upstream: smtpUp,
				TLSConfig: tc, Tracker: &d.tracker, Logger: d.log, Hostname: d.cfg.Hostname,
				MaxMessageBytes: d.cfg.SMTP.MaxMessageSize, Throttle: throttle, Limits: limits})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// serve opens one listener and runs a front end on it.
func (d *daemon) serve(proto string, l config.Listener, build func(*tls.Config) server) error {
	mode, err := proxy.ParseTLSMode(l.TLS)
	if err != nil {
		return err
	}
	tc, err := serverTLS(d.cfg, l, d.certs, d.log)
	if err != nil {
		return fmt.Errorf("%s: %s.listen: %w", d.cfg.File, proto, err)
	}
	ln, err := net.Listen("tcp", l.Address)
	if err != nil {
		return fmt.Errorf("%s listener: %w", proto, err)
	}
	if l.ProxyProtocol {
		ln = proxy.NewProxyProtoListener(ln, d.cfg.ProxyProtocol.Trusted, d.log.With("proto", proto))
	}
	srv := build(tc)
	d.servers = append(d.servers, srv)
	d.bound = append(d.bound, boundListener{proto: proto, mode: mode, addr: ln.Addr()})
	d.log.Info("listening", "proto", proto, "address", ln.Addr().String(), "tls", string(mode),
		"proxy_protocol", l.ProxyProtocol)
	go func() {
		if err := srv.Serve(ln, mode); err != nil {
			d.log.Error("listener failed", "proto", proto, "address", l.Address, "err", err)
		}
	}()
	return nil
}

// wait runs until ctx ends (SIGTERM, SIGINT), reloading the certificate on
// SIGHUP, then shuts down gracefully.
func (d *daemon) wait(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			d.reload()
		case <-ctx.Done():
			d.log.Info("shutting down", "sessions", d.tracker.Len())
			return d.stop()
		}
	}
}

func (d *daemon) reload() {
	if d.certs == nil {
		return
	}
	if err := d.certs.Reload(); err != nil {
		d.log.Error("certificate reload failed; keeping the old one", "err", err)
		return
	}
	d.log.Info("certificate reloaded")
}

// stop closes the admin socket, lets sessions end within the grace period,
// and closes the store last so coalesced "last used" data is written.
func (d *daemon) stop() error {
	if d.admin != nil {
		d.admin.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	// In parallel: each front end stops accepting at once, then waits.
	errs := make([]error, len(d.servers)+1)
	var wg sync.WaitGroup
	for i, s := range d.servers {
		wg.Go(func() { errs[i] = s.Shutdown(ctx) })
	}
	wg.Wait()
	if d.store != nil {
		errs[len(d.servers)] = d.store.Close()
	}
	return errors.Join(errs...)
}
