package config

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestLimits(t *testing.T) {
	c := mustParse(t, "mailgate.yaml", y(
		"limits:",
		"  trusted_networks: [10.0.0.0/8, 192.0.2.7, \"2001:db8::1/48\"]",
		"  failure_delay: 1s",
		"  max_failure_delay: 20s",
		"  connections_per_ip: 5",
		"  connections_per_ipv6_48: 40",
		"  tls_handshake_timeout: 3s",
		"proxy_protocol:",
		"  trusted: [127.0.0.1]",
		"imap:",
		"  listen:",
		`    - { address: ":993", tls: implicit, proxy_protocol: true }`,
	)+msOAuth)
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("2001:db8::/48")}
	if !reflect.DeepEqual(c.Limits.TrustedNetworks, want) {
		t.Errorf("trusted_networks = %v, want %v", c.Limits.TrustedNetworks, want)
	}
	if c.Limits.FailureDelay != time.Second || c.Limits.MaxFailureDelay != 20*time.Second ||
		c.Limits.ConnectionsPerIP != 5 || c.Limits.MaxFailures != DefaultMaxFailures ||
		c.Limits.ConnectionsPerIPv6Site != 40 || c.Limits.TLSHandshakeTimeout != 3*time.Second {
		t.Errorf("limits = %+v", c.Limits)
	}
	if !c.IMAP.Listen[0].ProxyProtocol || c.ProxyProtocol.Trusted[0] != netip.MustParsePrefix("127.0.0.1/32") {
		t.Errorf("proxy protocol: %+v %+v", c.IMAP.Listen[0], c.ProxyProtocol)
	}
}

func TestLimitsErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		line       int
		key, msg   string
	}{
		{"bad network", y("limits:", "  trusted_networks:", "    - 10.0.0.0/8", "    - 10.0.0/8"),
			4, "limits.trusted_networks[1]", `"10.0.0/8" is not a network`},
		{"zero failures", y("limits:", "  max_failures: 0"), 2, "limits.max_failures", "too small"},
		{"negative delay", y("limits:", "  lockout: -1m"), 2, "limits.lockout", "not positive"},
		{"delays reversed", y("limits:", "  failure_delay: 20s"), 1, "limits.max_failure_delay", "below failure_delay"},
		{"delay too long", y("limits:", "  max_failure_delay: 1m"), 2, "limits.max_failure_delay", "longer than 30s"},
		{"tiny table", y("limits:", "  max_entries: 10"), 2, "limits.max_entries", "at least 100"},
		{"zero per /48", y("limits:", "  connections_per_ipv6_48: 0"), 2, "limits.connections_per_ipv6_48", "too small"},
		{"zero handshake", y("limits:", "  tls_handshake_timeout: 0s"), 2, "limits.tls_handshake_timeout", "not positive"},
		{"proxy without trusted", y("smtp:", "  listen:", `    - { address: ":587", tls: starttls, proxy_protocol: true }`),
			3, "smtp.listen[0].proxy_protocol", "proxy_protocol.trusted"},
		{"pop3 proxy without trusted", y("pop3:", "  listen:", `    - { address: ":995", tls: implicit, proxy_protocol: true }`),
			3, "pop3.listen[0].proxy_protocol", "proxy_protocol.trusted"},
		{"bad balancer", y("proxy_protocol:", "  trusted: [lb.example.com]"), 2, "proxy_protocol.trusted[0]", "not a network"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("m.yaml", []byte(withOAuth(tt.yaml)))
			wantError(t, err, "m.yaml", tt.line, tt.key, tt.msg)
		})
	}
}
