package config

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestMetrics(t *testing.T) {
	tests := []struct {
		yaml string
		want Metrics
	}{
		{"", Metrics{}},
		{"metrics: {}\n", Metrics{}},
		{"metrics: {listen: \"127.0.0.1:9154\"}\n", Metrics{Listen: "127.0.0.1:9154"}},
		{"metrics: {listen: \"localhost:9154\"}\n", Metrics{Listen: "localhost:9154"}},
		{"metrics: {listen: \"127.0.0.1:0\"}\n", Metrics{Listen: "127.0.0.1:0"}}, // tests: any free port
		{"metrics: {listen: \"[::1]:9154\"}\n", Metrics{Listen: "[::1]:9154"}},
		{"metrics: {listen: \":9154\", allow: [10.0.0.5, 192.0.2.0/24]}\n", Metrics{Listen: ":9154",
			Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32"), netip.MustParsePrefix("192.0.2.0/24")}}},
	}
	for _, tt := range tests {
		c := mustParse(t, "m.yaml", tt.yaml+msOAuth)
		if !reflect.DeepEqual(c.Metrics, tt.want) {
			t.Errorf("%q: metrics = %+v, want %+v", tt.yaml, c.Metrics, tt.want)
		}
		if c.Metrics.Enabled() != (tt.want.Listen != "") {
			t.Errorf("%q: Enabled = %v", tt.yaml, c.Metrics.Enabled())
		}
	}
}

func TestParseMetricsErrors(t *testing.T) {
	tests := []parseError{
		{"public without allow", y("metrics:", `  listen: ":9154"`), 1, "metrics.allow",
			"required when metrics.listen (\":9154\") is not a loopback address"},
		{"address without allow", y("metrics:", `  listen: "192.0.2.1:9154"`), 1, "metrics.allow", "not a loopback address"},
		{"allow without listen", y("metrics:", "  allow: [10.0.0.0/8]"), 1, "metrics.listen", "required when metrics.allow is set"},
		{"no port", y("metrics:", "  listen: 127.0.0.1"), 2, "metrics.listen", "not host:port"},
		{"bad network", y("metrics:", `  listen: ":9154"`, "  allow: [10.0.0.0/99]"), 3, "metrics.allow[0]", "not a network"},
		{"unknown key", y("metrics:", `  listen: "127.0.0.1:9154"`, "  alow: [10.0.0.0/8]"), 3, "metrics.alow", "unknown key"},
	}
	wantParseErrors(t, tests, func(s string) string { return s + msOAuth })
}
