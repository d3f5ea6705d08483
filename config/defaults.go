package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Defaults for keys left out of the file.
const (
	DefaultStorePath    = "/var/lib/mailgate/mailgate.db"
	DefaultMinVersion   = "1.2" // Go's own server default; "1.0" is for Windows 7 only
	DefaultMaxPasswords = 40    // per mailbox, as Microsoft allows app passwords
	DefaultRedirectURL  = "http://localhost"
	// DefaultShutdownGrace is how long SIGTERM lets sessions finish: long
	// enough for a large message to reach the upstream.
	DefaultShutdownGrace = 30 * time.Second
	defaultKeyFileName   = "mailgate.key"
	defaultAdminSockName = "admin.sock"
)

// upstreamDefaults are the providers' submission, IMAP and POP3 servers.
var upstreamDefaults = map[Provider]struct{ imap, smtp, pop3 Upstream }{
	ProviderMicrosoft: {
		imap: Upstream{Address: "outlook.office365.com:993", TLS: TLSImplicit},
		smtp: Upstream{Address: "smtp.office365.com:587", TLS: TLSStartTLS},
		pop3: Upstream{Address: "outlook.office365.com:995", TLS: TLSImplicit},
	},
	ProviderGoogle: {
		imap: Upstream{Address: "imap.gmail.com:993", TLS: TLSImplicit},
		smtp: Upstream{Address: "smtp.gmail.com:587", TLS: TLSStartTLS},
		pop3: Upstream{Address: "pop.gmail.com:995", TLS: TLSImplicit},
	},
}

// providerFlow keys what depends on both the provider and the flow.
type providerFlow struct {
	p Provider
	f Flow
}

// defaultScopes are the scopes each provider and flow needs; generic has
// none.
var defaultScopes = map[providerFlow][]string{
	{ProviderMicrosoft, FlowDelegated}: {
		"https://outlook.office.com/IMAP.AccessAsUser.All",
		"https://outlook.office.com/SMTP.Send",
		"offline_access", // without it there is no refresh token
		// An ID token names the signed-in user and tenant, so "account
		// link" can refuse another user or tenant before its upstream login
		// (OpenID Connect Core 3.1.2).
		"openid", "email", "profile",
	},
	{ProviderMicrosoft, FlowApp}:    {"https://outlook.office365.com/.default"},
	{ProviderGoogle, FlowDelegated}: {"https://mail.google.com/", "openid", "email"},
	{ProviderGoogle, FlowApp}:       {"https://mail.google.com/"},
}

// popScopes are the scopes a provider and flow needs in addition for
// POP3, asked for by default only when the pop3 section is present: an
// app registration without POP permission would otherwise fail every
// sign-in. Google's https://mail.google.com/ covers POP, and Microsoft's
// app flow gets every granted permission with .default.
var popScopes = map[providerFlow]string{
	{ProviderMicrosoft, FlowDelegated}: "https://outlook.office.com/POP.AccessAsUser.All",
}

// build applies defaults to raw and makes relative paths relative to the
// config file's directory. It checks nothing beyond what defaults need.
func (d *doc) build(raw *rawConfig) (*Config, error) {
	c := &Config{
		File:          d.file,
		Hostname:      raw.Hostname,
		Store:         raw.Store,
		Admin:         raw.Admin,
		TLS:           raw.TLS,
		IMAP:          raw.IMAP,
		SMTP:          raw.SMTP,
		POP3:          raw.POP3,
		OAuth:         raw.OAuth,
		Accounts:      Accounts{Domains: raw.Accounts.Domains, MaxPasswords: DefaultMaxPasswords},
		Log:           raw.Log,
		Web:           raw.Web,
		Alerts:        raw.Alerts,
		ShutdownGrace: DefaultShutdownGrace,
	}
	if raw.ShutdownGrace != nil {
		c.ShutdownGrace = *raw.ShutdownGrace
	}
	var err error
	if c.Limits, c.ProxyProtocol, err = d.buildLimits(raw.Limits, raw.ProxyProtocol); err != nil {
		return nil, err
	}
	if c.Metrics, err = d.buildMetrics(raw.Metrics); err != nil {
		return nil, err
	}
	if raw.Accounts.MaxPasswords != nil {
		c.Accounts.MaxPasswords = *raw.Accounts.MaxPasswords
	}
	if c.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, d.errorf("hostname", "not set, and the machine's name is unknown: %w", err)
		}
		c.Hostname = h
	}
	d.resolvePaths(c)
	defaultStore(c)
	defaultTLS(c)
	defaultPOP3(c, d.present("pop3"))
	defaultOAuth(&c.OAuth, len(c.POP3.Listen) > 0)
	defaultWeb(&c.Web)
	c.IMAP.Upstream = defaultUpstream(c.IMAP.Upstream, upstreamDefaults[c.OAuth.Provider].imap)
	c.SMTP.Upstream = defaultUpstream(c.SMTP.Upstream, upstreamDefaults[c.OAuth.Provider].smtp)
	c.POP3.Upstream = defaultUpstream(c.POP3.Upstream, upstreamDefaults[c.OAuth.Provider].pop3)
	defaultLog(&c.Log)
	return c, nil
}

// resolvePaths makes every relative path in the file relative to the
// directory of the file, so the daemon does not depend on its working
// directory.
func (d *doc) resolvePaths(c *Config) {
	dir := filepath.Dir(d.file)
	for _, p := range []*string{
		&c.Store.Path, &c.Store.KeyFile, &c.Store.DSNFile, &c.Admin.Socket, &c.TLS.CertFile, &c.TLS.KeyFile,
		&c.IMAP.Upstream.CAFile, &c.SMTP.Upstream.CAFile, &c.POP3.Upstream.CAFile,
		&c.OAuth.ClientSecretFile, &c.OAuth.ServiceAccountFile, &c.Alerts.Webhook.SecretFile,
	} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// defaultPaths keeps the key and the socket next to the bbolt database, so
// one directory with one owner holds all of mailgate's state.
func defaultPaths(c *Config) {
	if c.Store.Path == "" {
		c.Store.Path = DefaultStorePath
	}
	dir := filepath.Dir(c.Store.Path)
	if c.Store.KeyFile == "" {
		c.Store.KeyFile = filepath.Join(dir, defaultKeyFileName)
	}
	if c.Admin.Socket == "" {
		c.Admin.Socket = filepath.Join(dir, defaultAdminSockName)
	}
}

func defaultTLS(c *Config) {
	if c.TLS.MinVersion == "" {
		c.TLS.MinVersion = DefaultMinVersion
	}
	if len(c.TLS.Ciphers) == 0 {
		c.TLS.Ciphers = nil // "ciphers: []" as in the documented example
	}
	// A missing listen key means the standard ports; "listen: []" (empty but
	// present) disables the protocol.
	lowerModes(c.IMAP.Listen)
	lowerModes(c.SMTP.Listen)
	if c.IMAP.Listen == nil {
		c.IMAP.Listen = []Listener{{Address: ":993", TLS: TLSImplicit}, {Address: ":143", TLS: TLSStartTLS}}
	}
	if c.SMTP.Listen == nil {
		c.SMTP.Listen = []Listener{{Address: ":465", TLS: TLSImplicit}, {Address: ":587", TLS: TLSStartTLS}}
	}
}

// defaultPOP3: unlike IMAP and SMTP, POP3 is off unless the file has a
// pop3 section (its default scopes need a permission that existing app
// registrations lack). A section without a listen key gets the standard
// ports; "listen: []" keeps POP3 off.
func defaultPOP3(c *Config, present bool) {
	lowerModes(c.POP3.Listen)
	if present && c.POP3.Listen == nil {
		c.POP3.Listen = []Listener{{Address: ":995", TLS: TLSImplicit}, {Address: ":110", TLS: TLSStartTLS}}
	}
}

// defaultOAuth fills in the flow, the redirect URL, the issuer and the
// scopes; pop3 adds the POP scope the provider needs to the default scopes.
func defaultOAuth(o *OAuth, pop3 bool) {
	o.Provider = lower(o.Provider)
	o.Flow = lower(o.Flow)
	if o.Flow == "" {
		o.Flow = FlowDelegated
	}
	if o.RedirectURL == "" {
		o.RedirectURL = DefaultRedirectURL
	}
	if len(o.AllowedTenants) == 0 {
		o.AllowedTenants = nil // "allowed_tenants: []" as in the documented example
	}
	if len(o.Scopes) == 0 { // "scopes: []" as in the documented example also means the default
		o.Scopes = slices.Clone(defaultScopes[providerFlow{o.Provider, o.Flow}])
		if pop, ok := popScopes[providerFlow{o.Provider, o.Flow}]; ok && pop3 {
			o.Scopes = slices.Insert(o.Scopes, 2, pop) // after IMAP and SMTP, in the consent screen's order
		}
	}
	defaultIssuer(o)
}

// defaultUpstream fills in the provider's address and TLS mode, and XOAUTH2,
// which both Microsoft and Google accept. Generic has no defaults for
// address and TLS: validate asks for them.
func defaultUpstream(u, def Upstream) Upstream {
	if u.Address == "" {
		u.Address = def.Address
	}
	u.TLS = lower(u.TLS)
	if u.TLS == "" {
		u.TLS = def.TLS
	}
	u.Mechanism = lower(u.Mechanism)
	if u.Mechanism == "" {
		u.Mechanism = MechXOAUTH2
	}
	return u
}

func defaultLog(l *Log) {
	l.Level = strings.ToLower(l.Level)
	if l.Level == "" {
		l.Level = "info"
	}
	l.Format = lower(l.Format)
	if l.Format == "" {
		l.Format = LogText
	}
}

func lowerModes(ls []Listener) {
	for i := range ls {
		ls[i].TLS = lower(ls[i].TLS)
	}
}

// lower is strings.ToLower for the typed values: the file may say
// "STARTTLS" or "Microsoft", the rest of mailgate sees only the constants.
func lower[T ~string](s T) T { return T(strings.ToLower(string(s))) }
