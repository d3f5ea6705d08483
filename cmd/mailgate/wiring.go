package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"

	"mailgate/config"
	"mailgate/proxy"
	"mailgate/proxy/admin"
	"mailgate/proxy/imap"
	"mailgate/proxy/oauth"
	"mailgate/store"
)

// newService builds the admin service. A config whose oauth section cannot
// be used still allows the password commands.
// sessions is nil outside the daemon (no live sessions to end). hooks
// set the OAuth manager's callbacks (the daemon's alerts).
func newService(cfg *config.Config, st *store.Store, sessions admin.Sessions, log *slog.Logger, hooks ...func(*oauth.Options)) *service {
	s := &service{cfg: cfg, store: st, sessions: sessions, log: log}
	if m, err := newOAuth(cfg, st, log, hooks...); err == nil {
		s.oauth = m
	} else {
		log.Debug("oauth unavailable", "err", err)
	}
	return s
}

// newOAuth turns the oauth section into the manager's Options; hooks set
// its callbacks.
func newOAuth(cfg *config.Config, st *store.Store, log *slog.Logger, hooks ...func(*oauth.Options)) (*oauth.Manager, error) {
	o := cfg.OAuth
	opts := &oauth.Options{
		Provider: provider(o.Provider), Flow: flow(o.Flow), Tenant: o.Tenant, AllowedTenants: o.AllowedTenants,
		ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		TokenURL: o.TokenURL, DeviceAuthURL: o.DeviceAuthorizationURL,
		AuthURL: o.AuthURL, RedirectURL: o.RedirectURL, Scopes: o.Scopes,
		ServiceAccountJSON: o.ServiceAccountKey, Store: st, Logger: log,
	}
	up, err := upstream(cfg.IMAP.Upstream)
	if err != nil {
		return nil, fmt.Errorf("imap.upstream: %w", err)
	}
	opts.VerifyMailbox = verifyMailbox(up)
	for _, h := range hooks {
		h(opts)
	}
	return oauth.New(opts)
}

// verifyMailbox checks every new link by logging in to the IMAP upstream as
// the mailbox with XOAUTH2 and touching it (issue 13): an ID token's claims
// can be set by the user's own tenant admin, so only a login shows that the
// grant opens this mailbox and not another user's.
func verifyMailbox(up proxy.Upstream) func(ctx context.Context, mailbox, token string) error {
	return func(ctx context.Context, mailbox, token string) error {
		err := imap.CheckLogin(ctx, up, mailbox, token)
		if errors.Is(err, proxy.ErrAuthFailed) {
			return fmt.Errorf("%w: upstream login as %s: %w", oauth.ErrWrongMailbox, mailbox, err)
		}
		return err
	}
}

// newLogger builds the daemon's logger from the log section.
func newLogger(l config.Log, w io.Writer) *slog.Logger {
	var level slog.LevelVar
	level.Set(l.SlogLevel())
	return newLoggerAt(l.Format, &level, w)
}

// newLoggerAt logs at level, which the daemon moves at a reload (log.level:
// debug to find out why a client fails, without ending its sessions).
func newLoggerAt(format config.LogFormat, level *slog.LevelVar, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// upstream turns an upstream section into proxy.Upstream; the certificate
// is verified against the system roots plus ca_file, never switched off.
func upstream(u config.Upstream) (proxy.Upstream, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if u.CAFile != "" {
		pem, err := os.ReadFile(u.CAFile)
		if err != nil {
			return proxy.Upstream{}, fmt.Errorf("upstream ca_file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return proxy.Upstream{}, fmt.Errorf("upstream ca_file %s: no PEM certificate in it", u.CAFile)
		}
	}
	// The session cache lets logins resume TLS with the upstream instead of
	// a full handshake with certificate verification each time.
	host, _, _ := net.SplitHostPort(u.Address) // none: ClientTLS tries again
	return proxy.Upstream{Address: u.Address, TLS: tlsMode(u.TLS), Mechanism: mechanism(u.Mechanism),
		TLSConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, ServerName: host,
			ClientSessionCache: tls.NewLRUClientSessionCache(0)}}, nil
}

// serverTLS is a listener's TLS config: the shared reloadable certificate,
// the listener's minimum version and cipher policy (see tlsPolicy).
func serverTLS(cfg *config.Config, l config.Listener, certs *proxy.CertLoader, log *slog.Logger) (*tls.Config, error) {
	if l.TLS == config.TLSNone {
		return nil, nil
	}
	if certs == nil {
		return nil, fmt.Errorf("listener %s (tls: %s) needs tls.cert_file and tls.key_file", l.Address, l.TLS)
	}
	v, err := cfg.TLSVersion(l)
	if err != nil {
		return nil, err
	}
	suites, err := cfg.CipherSuites(l)
	if err != nil {
		return nil, err
	}
	tc := tlsPolicy(v, suites)
	tc.GetCertificate = certs.GetCertificate
	if v < tls.VersionTLS12 {
		log.Warn("TLS below 1.2 enabled for old Outlook on Windows 7; turn it off once those clients are gone",
			"listener", l.Address, "min_version", tls.VersionName(v))
	}
	return tc, nil
}

// loadCerts loads the certificate when any listener needs TLS, so that both
// "config check" and serve report a missing or broken one up front.
func loadCerts(cfg *config.Config) (*proxy.CertLoader, error) {
	need := ""
	for _, l := range slices.Concat(cfg.IMAP.Listen, cfg.SMTP.Listen, cfg.POP3.Listen, cfg.Web.Listen) {
		if l.TLS != config.TLSNone {
			need = l.Address
		}
	}
	switch {
	case need == "":
		return nil, nil
	case cfg.TLS.CertFile == "":
		return nil, withHint(fmt.Errorf("%s: listener %s needs tls.cert_file and tls.key_file", cfg.File, need),
			"set tls.cert_file and tls.key_file to a certificate covering the hostname")
	}
	certs, err := proxy.NewCertLoader(cfg.TLS.CertFile, cfg.TLS.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: tls: %w", cfg.File, err)
	}
	return certs, nil
}

// newThrottle turns the limits section into the shared login throttle.
func newThrottle(l config.Limits) *proxy.Throttle {
	return proxy.NewThrottle(&proxy.ThrottleOptions{
		Trusted: l.TrustedNetworks, FailureDelay: l.FailureDelay, MaxFailureDelay: l.MaxFailureDelay,
		MaxFailures: l.MaxFailures, MaxMailboxFailures: l.MaxMailboxFailures,
		FailureWindow: l.FailureWindow, Lockout: l.Lockout, MaxEntries: l.MaxEntries,
	})
}

// newLimits turns the limits section into the shared connection limits.
func newLimits(l config.Limits) *proxy.Limits {
	return proxy.NewLimits(&proxy.LimitsOptions{
		ConnsPerIP: l.ConnectionsPerIP, ConnsPerIPv6Site: l.ConnectionsPerIPv6Site, MaxConns: l.Connections,
		SessionsPerMailbox: l.UpstreamSessionsPerMailbox, Trusted: l.TrustedNetworks,
	})
}

// tlsMode converts a TLS mode that config has checked. Anything else, which
// config does not let through, gets the strictest mode rather than none.
func tlsMode(m config.TLSMode) proxy.TLSMode {
	switch m {
	case config.TLSStartTLS:
		return proxy.TLSStartTLS
	case config.TLSNone:
		return proxy.TLSNone
	}
	return proxy.TLSImplicit
}

// mechanism converts the upstream's SASL mechanism; XOAUTH2 is the default
// of both config and proxy.
func mechanism(m config.Mechanism) proxy.Mechanism {
	if m == config.MechOAUTHBEARER {
		return proxy.MechOAuthBearer
	}
	return proxy.MechXOAUTH2
}

// provider converts the OAuth provider; "" (which config does not let
// through) makes oauth.New fail.
func provider(p config.Provider) oauth.Provider {
	switch p {
	case config.ProviderMicrosoft:
		return oauth.Microsoft
	case config.ProviderGoogle:
		return oauth.Google
	case config.ProviderGeneric:
		return oauth.Generic
	}
	return ""
}

// flow converts the OAuth flow; "" means oauth's default, delegated.
func flow(f config.Flow) oauth.Flow {
	if f == config.FlowApp {
		return oauth.App
	}
	return oauth.Delegated
}
