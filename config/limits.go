package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// Defaults of the limits section, after Dovecot's auth_failure_delay (2 s
// doubling to 15 s) and Exchange Online's ~20 sessions per mailbox.
const (
	DefaultFailureDelay       = 2 * time.Second
	DefaultMaxFailureDelay    = 15 * time.Second
	DefaultMaxFailures        = 10
	DefaultMaxMailboxFailures = 30
	DefaultFailureWindow      = 10 * time.Minute
	DefaultLockout            = 15 * time.Minute
	DefaultMaxEntries         = 100000
	DefaultConnsPerIP         = 50
	DefaultConnsPerIPv6Site   = 200 // per IPv6 /48
	DefaultMaxConns           = 10000
	// DefaultTLSHandshakeTimeout bounds a TLS handshake; a real client
	// finishes in milliseconds.
	DefaultTLSHandshakeTimeout = 10 * time.Second
	DefaultSessionsPerMailbox  = 20
)

// maxFailureDelay is the longest delay allowed: the SMTP login's own
// timeout is 30 s, and a longer delay would end in a timeout instead of
// the failure's reply.
const maxFailureDelay = 30 * time.Second

// Limits configures brute-force throttling and connection limits, shared
// by IMAP and SMTP.
type Limits struct {
	// TrustedNetworks are exempt from throttling and the per-address
	// connection limit (an office NAT, a monitoring host). Default none.
	TrustedNetworks    []netip.Prefix
	FailureDelay       time.Duration // first failed login's reply delay
	MaxFailureDelay    time.Duration // the delay doubles up to this
	MaxFailures        int           // per client address (IPv6: /64) in FailureWindow
	MaxMailboxFailures int           // per mailbox from all addresses in FailureWindow
	FailureWindow      time.Duration
	Lockout            time.Duration // refused without a password check this long
	MaxEntries         int           // bound of the throttle's tables
	ConnectionsPerIP   int
	// ConnectionsPerIPv6Site bounds connections per IPv6 /48, so that one
	// allocation's many /64s cannot take the whole total.
	ConnectionsPerIPv6Site int
	Connections            int           // in total
	TLSHandshakeTimeout    time.Duration // each TLS handshake, implicit or STARTTLS
	// UpstreamSessionsPerMailbox bounds relayed sessions per mailbox and
	// protocol.
	UpstreamSessionsPerMailbox int
}

// ProxyProtocol lists the load balancers whose PROXY protocol headers are
// believed, on listeners with proxy_protocol: true.
type ProxyProtocol struct {
	Trusted []netip.Prefix
}

type rawLimits struct {
	TrustedNetworks            []string       `yaml:"trusted_networks"`
	FailureDelay               *time.Duration `yaml:"failure_delay"`
	MaxFailureDelay            *time.Duration `yaml:"max_failure_delay"`
	MaxFailures                *int           `yaml:"max_failures"`
	MaxMailboxFailures         *int           `yaml:"max_mailbox_failures"`
	FailureWindow              *time.Duration `yaml:"failure_window"`
	Lockout                    *time.Duration `yaml:"lockout"`
	MaxEntries                 *int           `yaml:"max_entries"`
	ConnectionsPerIP           *int           `yaml:"connections_per_ip"`
	ConnectionsPerIPv6Site     *int           `yaml:"connections_per_ipv6_48"`
	TLSHandshakeTimeout        *time.Duration `yaml:"tls_handshake_timeout"`
	Connections                *int           `yaml:"connections"`
	UpstreamSessionsPerMailbox *int           `yaml:"upstream_sessions_per_mailbox"`
}

type rawProxyProtocol struct {
	Trusted []string `yaml:"trusted"`
}

// buildLimits applies defaults and checks the limits and proxy_protocol
// sections; an explicit zero or negative number is an error.
func (d *doc) buildLimits(r rawLimits, rp rawProxyProtocol) (Limits, ProxyProtocol, error) {
	var l Limits
	var err error
	if l.TrustedNetworks, err = d.prefixes("limits.trusted_networks", r.TrustedNetworks); err != nil {
		return l, ProxyProtocol{}, err
	}
	var pp ProxyProtocol
	if pp.Trusted, err = d.prefixes("proxy_protocol.trusted", rp.Trusted); err != nil {
		return l, pp, err
	}
	for _, f := range []struct {
		key string
		dst *time.Duration
		v   *time.Duration
		def time.Duration
	}{
		{"failure_delay", &l.FailureDelay, r.FailureDelay, DefaultFailureDelay},
		{"max_failure_delay", &l.MaxFailureDelay, r.MaxFailureDelay, DefaultMaxFailureDelay},
		{"failure_window", &l.FailureWindow, r.FailureWindow, DefaultFailureWindow},
		{"lockout", &l.Lockout, r.Lockout, DefaultLockout},
		{"tls_handshake_timeout", &l.TLSHandshakeTimeout, r.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout},
	} {
		if *f.dst = f.def; f.v != nil {
			*f.dst = *f.v
		}
		if *f.dst <= 0 {
			return l, pp, d.errorf("limits."+f.key, "%v is not positive (want a duration such as 2s or 10m)", *f.dst)
		}
	}
	for _, f := range []struct {
		key      string
		dst, v   *int
		def, min int
	}{
		{"max_failures", &l.MaxFailures, r.MaxFailures, DefaultMaxFailures, 1},
		{"max_mailbox_failures", &l.MaxMailboxFailures, r.MaxMailboxFailures, DefaultMaxMailboxFailures, 1},
		{"max_entries", &l.MaxEntries, r.MaxEntries, DefaultMaxEntries, 100},
		{"connections_per_ip", &l.ConnectionsPerIP, r.ConnectionsPerIP, DefaultConnsPerIP, 1},
		{"connections_per_ipv6_48", &l.ConnectionsPerIPv6Site, r.ConnectionsPerIPv6Site, DefaultConnsPerIPv6Site, 1},
		{"connections", &l.Connections, r.Connections, DefaultMaxConns, 1},
		{"upstream_sessions_per_mailbox", &l.UpstreamSessionsPerMailbox, r.UpstreamSessionsPerMailbox, DefaultSessionsPerMailbox, 1},
	} {
		if *f.dst = f.def; f.v != nil {
			*f.dst = *f.v
		}
		if *f.dst < f.min {
			return l, pp, d.errorf("limits."+f.key, "%d is too small (want at least %d)", *f.dst, f.min)
		}
	}
	if l.MaxFailureDelay > maxFailureDelay {
		return l, pp, d.errorf("limits.max_failure_delay", "%v is longer than %v, the time a login may take", l.MaxFailureDelay, maxFailureDelay)
	}
	if l.MaxFailureDelay < l.FailureDelay {
		return l, pp, d.errorf("limits.max_failure_delay", "%v is below failure_delay %v", l.MaxFailureDelay, l.FailureDelay)
	}
	return l, pp, nil
}

// prefixes parses networks ("10.0.0.0/8") or single addresses ("192.0.2.7").
func (d *doc) prefixes(key string, ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				return nil, d.errorf(key+"["+strconv.Itoa(i)+"]", "%q is not a network such as 10.0.0.0/8 or an address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// checkProxyProtocol: a listener that expects PROXY headers needs someone
// to believe them from.
func (d *doc) checkProxyProtocol(c *Config) error {
	for _, p := range c.listenSections() {
		for i, l := range p.ls {
			if l.ProxyProtocol && len(c.ProxyProtocol.Trusted) == 0 {
				return d.errorf(fmt.Sprintf("%s.listen[%d].proxy_protocol", p.name, i),
					"set, but proxy_protocol.trusted lists no load balancer")
			}
		}
	}
	return nil
}
