package config

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// maxSocketPath is the longest unix socket path Linux accepts (sun_path is
// 108 bytes including the terminating NUL); bind fails obscurely beyond it.
const maxSocketPath = 107

// validate checks c roughly in file order, so the first error is usually
// the topmost; oauth comes before the upstreams, whose defaults depend on
// the provider.
func (d *doc) validate(c *Config) error {
	for _, check := range []func(*Config) error{
		d.checkHostname, d.checkStore, d.checkTLS, d.checkListeners,
		d.checkOAuth, d.checkUpstreams, d.checkAccounts, d.checkLog, d.checkProxyProtocol, d.checkWeb, d.checkAlerts, d.checkMetrics, d.checkShutdown,
	} {
		if err := check(c); err != nil {
			return err
		}
	}
	return nil
}

func (d *doc) checkHostname(c *Config) error {
	if strings.ContainsAny(c.Hostname, " \t/:@") || len(c.Hostname) > 253 {
		return d.errorf("hostname", "%q is not a host name (want a name such as mail.example.com)", c.Hostname)
	}
	return nil
}

func (d *doc) checkStore(c *Config) error {
	if err := d.checkStoreKeys(c); err != nil {
		return err
	}
	if n := len(c.Admin.Socket); n > maxSocketPath {
		return d.errorf("admin.socket", "path is %d bytes, longer than the %d a unix socket allows", n, maxSocketPath)
	}
	return nil
}

func (d *doc) checkTLS(c *Config) error {
	if err := d.checkVersion("tls.min_version", c.TLS.MinVersion); err != nil {
		return err
	}
	if err := d.checkCiphers("tls.ciphers", c.TLS.Ciphers); err != nil {
		return err
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		key := "tls.key_file"
		if c.TLS.CertFile == "" {
			key = "tls.cert_file"
		}
		return d.errorf(key, "required when %s is set (set both or neither)", otherTLSKey(key))
	}
	return nil
}

func otherTLSKey(key string) string {
	if key == "tls.key_file" {
		return "tls.cert_file"
	}
	return "tls.key_file"
}

func (d *doc) checkCiphers(key string, names []string) error {
	for i, n := range names {
		if _, ok := cipherSuite(n); !ok {
			return d.errorf(key+"["+strconv.Itoa(i)+"]",
				"unknown or insecure cipher suite %q (want an IANA name such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)", n)
		}
	}
	return nil
}

func (d *doc) checkVersion(key, v string) error {
	if _, ok := tlsVersions[v]; !ok {
		return d.errorf(key, "unknown version %q (want 1.0, 1.1, 1.2 or 1.3)", v)
	}
	return nil
}

// listenSection is one section's listeners, named as in the file.
type listenSection struct {
	name string
	ls   []Listener
}

// listenSections are the sections with listeners: the one list every
// check of listeners walks, so that none leaves a front end out.
func (c *Config) listenSections() []listenSection {
	return []listenSection{{"imap", c.IMAP.Listen}, {"smtp", c.SMTP.Listen}, {"pop3", c.POP3.Listen}, {"web", c.Web.Listen}}
}

func (d *doc) checkListeners(c *Config) error {
	if len(c.IMAP.Listen) == 0 && len(c.SMTP.Listen) == 0 && len(c.POP3.Listen) == 0 {
		return d.errorf("imap.listen", "no listeners for imap, smtp or pop3 (remove \"listen: []\" to get the standard ports)")
	}
	seen := map[string]string{} // address -> key of its first listener
	for _, p := range c.listenSections() {
		for i, l := range p.ls {
			key := p.name + ".listen[" + strconv.Itoa(i) + "]"
			if p.name == "web" && l.TLS != TLSImplicit && l.TLS != TLSNone {
				return d.webModeError(key+".tls", l.TLS)
			}
			if err := d.checkListener(key, l); err != nil {
				return err
			}
			if first, dup := seen[l.Address]; dup && !strings.HasSuffix(l.Address, ":0") {
				return d.errorf(key+".address", "%q is already used by %s", l.Address, first)
			}
			seen[l.Address] = key
		}
	}
	return nil
}

func (d *doc) checkListener(key string, l Listener) error {
	host, err := splitAddress(l.Address, 0)
	if err != nil {
		return d.errorf(key+".address", "%w", err)
	}
	if err := d.checkMode(key+".tls", l.TLS); err != nil {
		return err
	}
	if l.TLS == TLSNone && !isLoopback(host) && !l.Force {
		return d.errorf(key+".tls", "none on %q, which is not a loopback address, would take passwords in clear "+
			"(listen on 127.0.0.1, or set force: true behind a TLS-terminating proxy)", l.Address)
	}
	if len(l.Ciphers) > 0 && l.TLS == TLSNone {
		return d.errorf(key+".ciphers", "set on a listener with tls: none")
	}
	if err := d.checkCiphers(key+".ciphers", l.Ciphers); err != nil {
		return err
	}
	if l.MinVersion == "" {
		return nil
	}
	if l.TLS == TLSNone {
		return d.errorf(key+".min_version", "set on a listener with tls: none")
	}
	return d.checkVersion(key+".min_version", l.MinVersion)
}

// webModeError: browsers speak TLS from the first byte or not at all.
func (d *doc) webModeError(key string, mode TLSMode) error {
	if mode == "" {
		return d.errorf(key, "missing (want implicit or none)")
	}
	return d.errorf(key, "%q is not a mode for the web (want implicit or none)", mode)
}

func (d *doc) checkMode(key string, mode TLSMode) error {
	switch mode {
	case TLSImplicit, TLSStartTLS, TLSNone:
		return nil
	case "":
		return d.errorf(key, "missing (want implicit, starttls or none)")
	}
	return d.errorf(key, "unknown mode %q (want implicit, starttls or none)", mode)
}

func (d *doc) checkUpstreams(c *Config) error {
	if err := d.checkUpstream(c, "imap.upstream", c.IMAP.Upstream); err != nil {
		return err
	}
	if c.SMTP.MaxMessageSize < 0 {
		return d.errorf("smtp.max_message_size", "%d is negative (0 means the upstream's SIZE)", c.SMTP.MaxMessageSize)
	}
	if err := d.checkUpstream(c, "smtp.upstream", c.SMTP.Upstream); err != nil {
		return err
	}
	if len(c.POP3.Listen) == 0 {
		return nil // off: a generic provider needs no pop3 upstream
	}
	return d.checkUpstream(c, "pop3.upstream", c.POP3.Upstream)
}

func (d *doc) checkUpstream(c *Config, key string, u Upstream) error {
	if u.Address == "" {
		return d.errorf(key+".address", "required for provider %s", c.OAuth.Provider)
	}
	host, err := splitAddress(u.Address, 1)
	if err != nil {
		return d.errorf(key+".address", "%w", err)
	}
	if host == "" {
		return d.errorf(key+".address", "%q has no host", u.Address)
	}
	if err := d.checkMode(key+".tls", u.TLS); err != nil {
		return err
	}
	if u.TLS == TLSNone && !isLoopback(host) {
		return d.errorf(key+".tls", "none to %q, which is not a loopback address, would send tokens in clear", u.Address)
	}
	if u.Mechanism != MechXOAUTH2 && u.Mechanism != MechOAUTHBEARER {
		return d.errorf(key+".mechanism", "unknown mechanism %q (want xoauth2 or oauthbearer)", u.Mechanism)
	}
	return nil
}

// splitAddress checks a host:port and returns the host. minPort is 0 for
// listeners (port 0 picks a free port, for tests) and 1 for upstreams.
func splitAddress(address string, minPort int) (string, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port", address)
	}
	if n, err := strconv.Atoi(port); err != nil || n < minPort || n > 65535 {
		return "", fmt.Errorf("%q has no valid port", address)
	}
	return host, nil
}

// isLoopback reports whether host can only be reached from this machine.
// An empty host (":143") means every address, so it is not loopback.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (d *doc) checkAccounts(c *Config) error {
	var domains []string
	for i, dom := range c.Accounts.Domains {
		dom = strings.ToLower(strings.TrimSpace(dom))
		if err := checkDomain(dom); err != nil {
			return d.wrap("accounts.domains["+strconv.Itoa(i)+"]", err)
		}
		if !slices.Contains(domains, dom) {
			domains = append(domains, dom)
		}
	}
	c.Accounts.Domains = domains
	if n := c.Accounts.MaxPasswords; n < 1 || n > 1000 {
		return d.errorf("accounts.max_passwords", "%d is out of range (want 1 to 1000)", n)
	}
	return nil
}

func checkDomain(dom string) error {
	switch {
	case dom == "":
		return errors.New("empty domain")
	case strings.Contains(dom, "@"):
		return fmt.Errorf("%q is an address; want a domain such as contoso.com", dom)
	case strings.ContainsAny(dom, " \t/:") || strings.HasPrefix(dom, ".") || strings.HasSuffix(dom, "."):
		return fmt.Errorf("%q is not a domain", dom)
	}
	return nil
}

func (d *doc) checkLog(c *Config) error {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return d.errorf("log.level", "unknown level %q (want debug, info, warn or error)", c.Log.Level)
	}
	if c.Log.Format != LogText && c.Log.Format != LogJSON {
		return d.errorf("log.format", "unknown format %q (want text or json)", c.Log.Format)
	}
	return nil
}

func (d *doc) checkShutdown(c *Config) error {
	if c.ShutdownGrace < 0 {
		return d.errorf("shutdown_grace", "%v is negative (0s closes sessions at once)", c.ShutdownGrace)
	}
	return nil
}
