package config

import (
	"net"
	"net/netip"
	"strconv"
)

// Metrics serves Prometheus metrics and health checks (/metrics, /healthz,
// /readyz) over plain HTTP; off when Listen is empty (the section left
// out).
type Metrics struct {
	// Listen is host:port, such as 127.0.0.1:9154. A non-loopback
	// address (":9154" is every address) needs Allow.
	Listen string
	// Allow are the client networks that may read the endpoints; others
	// get 403. Empty allows every client, which only a loopback Listen
	// may have.
	Allow []netip.Prefix
}

// Enabled reports whether the metrics endpoint runs.
func (m Metrics) Enabled() bool { return m.Listen != "" }

type rawMetrics struct {
	Listen string   `yaml:"listen"`
	Allow  []string `yaml:"allow"`
}

// buildMetrics parses the metrics section's networks.
func (d *doc) buildMetrics(r rawMetrics) (Metrics, error) {
	allow, err := d.prefixes("metrics.allow", r.Allow)
	return Metrics{Listen: r.Listen, Allow: allow}, err
}

// checkMetrics: the metrics name no mailbox, but they tell an attacker
// how busy and how broken the proxy is, and nothing authenticates the
// scraper; so an address others can reach needs a list of who may.
func (d *doc) checkMetrics(c *Config) error {
	m := c.Metrics
	if m.Listen == "" {
		if len(m.Allow) > 0 {
			return d.errorf("metrics.listen", "required when metrics.allow is set")
		}
		return nil
	}
	host, port, err := net.SplitHostPort(m.Listen)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		return d.errorf("metrics.listen", "%q is not host:port such as 127.0.0.1:9154", m.Listen)
	}
	if !isLoopback(host) && len(m.Allow) == 0 {
		return d.errorf("metrics.allow", "required when metrics.listen (%q) is not a loopback address: list the networks of your Prometheus servers, such as 10.0.0.5/32", m.Listen)
	}
	return nil
}
