// Package config turns one YAML file into a validated Config.
//
// The file is decoded into a raw form with unknown keys refused, then
// defaults are applied, then every value is checked; each error names the
// file, the line and the key (soju's config does the same). Only cmd imports
// this package: it turns a Config into the Options of each component, so no
// other package depends on YAML.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// DefaultFile is the config file used when neither the -config flag nor
// $MAILGATE_CONFIG names one.
const DefaultFile = "./mailgate.yaml"

// EnvFile is the environment variable that names the config file.
const EnvFile = "MAILGATE_CONFIG"

// TLSMode says how a listener or an upstream gets TLS. Parse lower-cases
// it and refuses any value but the three below, so cmd compares typed
// constants only.
type TLSMode string

// The TLS modes.
const (
	TLSImplicit TLSMode = "implicit" // TLS from the first byte (993, 465, 995)
	TLSStartTLS TLSMode = "starttls" // plaintext greeting, then STARTTLS (143, 587) or STLS (110)
	TLSNone     TLSMode = "none"     // no TLS: loopback, or forced
)

// Mechanism is the SASL mechanism of the upstream login, lower-cased as
// written in the file.
type Mechanism string

// The mechanisms that carry an OAuth 2.0 token.
const (
	MechXOAUTH2     Mechanism = "xoauth2"
	MechOAUTHBEARER Mechanism = "oauthbearer" // RFC 7628
)

// Provider is the OAuth identity provider.
type Provider string

// The providers.
const (
	ProviderMicrosoft Provider = "microsoft"
	ProviderGoogle    Provider = "google"
	ProviderGeneric   Provider = "generic"
)

// Flow is the OAuth grant mailgate uses.
type Flow string

// The flows.
const (
	FlowDelegated Flow = "delegated" // a refresh token per mailbox, linked by a person
	FlowApp       Flow = "app"       // client credentials (Microsoft) or a service account (Google)
)

// LogFormat is the format of the daemon's log lines.
type LogFormat string

// The log formats.
const (
	LogText LogFormat = "text" // slog's key=value lines
	LogJSON LogFormat = "json" // one JSON object a line
)

// Config is a loaded and validated mailgate configuration. All relative
// paths have been made relative to the directory of the config file.
type Config struct {
	File     string // path it was loaded from, for messages
	Hostname string // the name clients are told to use (and the certificate must cover)
	Store    Store
	Admin    Admin
	TLS      TLS
	IMAP     Proto
	SMTP     SMTP
	// POP3 is the POP3 front end; off (no listeners) when the file has no
	// pop3 section.
	POP3     Proto
	OAuth    OAuth
	Accounts Accounts
	Log      Log
	Limits   Limits
	// Web is the self-service portal; off when Web.Listen is empty.
	Web Web
	// ProxyProtocol names the balancers trusted on listeners with
	// proxy_protocol: true.
	ProxyProtocol ProxyProtocol
	// Alerts tell of mailbox link changes (webhook, mail); off when left out.
	Alerts Alerts
	// Metrics is the Prometheus endpoint; off when Metrics.Listen is empty.
	Metrics Metrics
	// ShutdownGrace is how long SIGTERM waits for sessions to end by
	// themselves before closing them.
	ShutdownGrace time.Duration
}

// Store says which backend holds mailgate's state and where the key that
// seals refresh tokens is. With DriverBBolt, Path is the database file and
// KeyFile defaults to its directory; with DriverPostgres, Path is empty, DSN
// names the database and KeyFile is required (the same file on every
// instance).
type Store struct {
	Driver StoreDriver `yaml:"driver"` // DriverBBolt (default) or DriverPostgres
	Path   string      `yaml:"path"`
	// DSN is a libpq connection string or URL: inline, or read from
	// DSNFile by Load. It may hold a password: never log it.
	DSN     string `yaml:"dsn"`
	DSNFile string `yaml:"dsn_file"` // mode 0600 or stricter
	KeyFile string `yaml:"key_file"` // 32 random bytes, created by the store if missing
}

// Admin locates the unix socket the daemon serves for the CLI.
type Admin struct {
	Socket string `yaml:"socket"`
}

// TLS holds the server certificate and the default minimum TLS version.
// CertFile and KeyFile are both set or both empty; cmd decides whether it
// needs them.
type TLS struct {
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	MinVersion string `yaml:"min_version"` // "1.0" to "1.3"
	// Ciphers are the TLS 1.0-1.2 cipher suites offered, by IANA name from
	// crypto/tls's secure list; empty means mailgate's own list (Mozilla's
	// intermediate ECDHE AEAD suites, plus the Windows 7 ones below TLS
	// 1.2). TLS 1.3 suites are not configurable.
	Ciphers []string `yaml:"ciphers"`
}

// Proto is the front end of one protocol: where clients connect and which
// upstream their sessions go to. An empty Listen disables the protocol.
type Proto struct {
	Listen   []Listener `yaml:"listen"`
	Upstream Upstream   `yaml:"upstream"`
}

// SMTP is the submission front end.
type SMTP struct {
	Proto `yaml:",inline"`
	// MaxMessageSize in bytes; 0 means the upstream's SIZE (RFC 1870).
	MaxMessageSize int64 `yaml:"max_message_size"`
}

// Listener is one address clients connect to.
type Listener struct {
	Address    string  `yaml:"address"`     // host:port; ":993" listens on every address
	TLS        TLSMode `yaml:"tls"`         // TLSImplicit, TLSStartTLS or TLSNone
	Force      bool    `yaml:"force"`       // allow TLSNone on a non-loopback address
	MinVersion string  `yaml:"min_version"` // overrides TLS.MinVersion when set
	// ProxyProtocol: every connection must come from a balancer in
	// ProxyProtocol.Trusted and start with a PROXY protocol v1/v2 header.
	ProxyProtocol bool     `yaml:"proxy_protocol"`
	Ciphers       []string `yaml:"ciphers"` // overrides TLS.Ciphers when set
}

// Upstream is the real mail server behind the proxy.
type Upstream struct {
	Address   string    `yaml:"address"`   // host:port
	TLS       TLSMode   `yaml:"tls"`       // TLSImplicit or TLSStartTLS (TLSNone to loopback only)
	Mechanism Mechanism `yaml:"mechanism"` // MechXOAUTH2 or MechOAUTHBEARER
	CAFile    string    `yaml:"ca_file"`   // extra roots in PEM, added to the system's
}

// OAuth describes how mailgate gets access tokens for the upstream.
// Empty URLs for microsoft and google mean the provider's own endpoints.
type OAuth struct {
	Provider               Provider `yaml:"provider"` // ProviderMicrosoft, ProviderGoogle or ProviderGeneric
	Flow                   Flow     `yaml:"flow"`     // FlowDelegated or FlowApp
	Tenant                 string   `yaml:"tenant"`   // microsoft: directory name or ID
	ClientID               string   `yaml:"client_id"`
	ClientSecret           string   `yaml:"client_secret"`      // inline, or read from ClientSecretFile by Load
	ClientSecretFile       string   `yaml:"client_secret_file"` // mutually exclusive with an inline secret
	TokenURL               string   `yaml:"token_url"`
	DeviceAuthorizationURL string   `yaml:"device_authorization_url"` // RFC 8628
	AuthURL                string   `yaml:"auth_url"`                 // authorization endpoint (code flow)
	RedirectURL            string   `yaml:"redirect_url"`             // code flow; default "http://localhost"
	Scopes                 []string `yaml:"scopes"`                   // default per provider and flow
	ServiceAccountFile     string   `yaml:"service_account_file"`     // google app flow: JSON key
	// AllowedTenants are the Entra ID directories (tenant IDs, lower case)
	// whose users may link mailboxes: the ID token's tid claim must be one
	// of them. Required for the delegated flow on tenant common,
	// organizations or consumers.
	AllowedTenants []string `yaml:"allowed_tenants"`
	// Issuer is the OpenID Connect issuer the portal verifies ID tokens
	// against, exactly as in the discovery document: derived for google,
	// and for microsoft from a tenant ID; required for the portal with
	// generic.
	Issuer string `yaml:"issuer"`
	// ServiceAccountKey is the content of ServiceAccountFile, read by Load.
	ServiceAccountKey []byte `yaml:"-"`
}

// Accounts limits who may hold app passwords.
type Accounts struct {
	Domains      []string // lower case; empty means anyone the provider accepts
	MaxPasswords int      // per mailbox, 1 to 1000
}

// Log configures the daemon's slog handler.
type Log struct {
	Level  string    `yaml:"level"`  // debug, info, warn or error
	Format LogFormat `yaml:"format"` // LogText or LogJSON
}

// Find returns the config file to load: the -config flag's value if set,
// else $MAILGATE_CONFIG, else DefaultFile.
func Find(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if env := os.Getenv(EnvFile); env != "" {
		return env
	}
	return DefaultFile
}

// Load reads the file at path, parses it and reads the secrets it names by
// file (oauth.client_secret_file, oauth.service_account_file,
// store.dsn_file). It refuses those files and store.key_file when users they
// are not meant for may read or change them (checkMode).
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	c, d, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	if err := d.resolveSecrets(c); err != nil {
		return nil, err
	}
	return c, nil
}

// maxFileSize bounds the config file. A config is a few kilobytes; the
// bound keeps a wrong -config (a database, /dev/zero) from being read until
// memory runs out.
const maxFileSize = 1 << 20

// readFile reads the config file, at most maxFileSize bytes of it.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, &Error{File: path, Err: errors.New("larger than 1 MiB; a config is a few kilobytes (is this the config file?)")}
	}
	return data, nil
}

// Parse decodes and validates a config; name is the file name used in
// messages and as the base of relative paths. It reads no files, so secrets
// named by *_file keys stay unresolved (Load resolves them).
func Parse(name string, data []byte) (*Config, error) {
	c, _, err := parse(name, data)
	return c, err
}

func parse(name string, data []byte) (*Config, *doc, error) {
	d, raw, err := decode(name, data)
	if err != nil {
		return nil, nil, err
	}
	c, err := d.build(raw)
	if err != nil {
		return nil, nil, err
	}
	if err := d.validate(c); err != nil {
		return nil, nil, err
	}
	return c, d, nil
}

// tlsVersions maps the config's names to crypto/tls constants.
var tlsVersions = map[string]uint16{
	"1.0": tls.VersionTLS10,
	"1.1": tls.VersionTLS11,
	"1.2": tls.VersionTLS12,
	"1.3": tls.VersionTLS13,
}

// TLSVersion returns the minimum TLS version for l as a crypto/tls constant:
// l.MinVersion if set, else TLS.MinVersion.
func (c *Config) TLSVersion(l Listener) (uint16, error) {
	name := l.MinVersion
	if name == "" {
		name = c.TLS.MinVersion
	}
	v, ok := tlsVersions[name]
	if !ok {
		return 0, fmt.Errorf("unknown tls version %q (want 1.0, 1.1, 1.2 or 1.3)", name)
	}
	return v, nil
}

// CipherSuites returns the cipher suite IDs for l: l.Ciphers if set, else
// TLS.Ciphers; nil means mailgate's own list.
func (c *Config) CipherSuites(l Listener) ([]uint16, error) {
	names := l.Ciphers
	if len(names) == 0 {
		names = c.TLS.Ciphers
	}
	var ids []uint16
	for _, n := range names {
		id, ok := cipherSuite(n)
		if !ok {
			return nil, fmt.Errorf("unknown cipher suite %q", n)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// cipherSuite looks a name up in crypto/tls's secure suites only: the
// insecure ones (RC4, 3DES, RSA key exchange, CBC-SHA256) cannot be chosen.
func cipherSuite(name string) (uint16, bool) {
	for _, cs := range tls.CipherSuites() {
		if cs.Name == name {
			return cs.ID, true
		}
	}
	return 0, false
}

// SlogLevel returns Level as a slog.Level (info when unset).
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
