package metrics

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"mailgate/proxy"
)

// BenchmarkGateLogin runs the whole login step (throttle, password check,
// session limit, registry, log line to a discarding handler) and ends the
// session, from parallel clients, with metrics off and on. Compare the
// two: metrics must cost no more than noise (docs/monitoring.md).
func BenchmarkGateLogin(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		var meter proxy.Meter
		if on {
			name, meter = "on", New(&Options{})
		}
		b.Run(name, func(b *testing.B) {
			g := proxy.NewGate(&proxy.GateOptions{Authenticator: auth{},
				Throttle: proxy.NewThrottle(nil), Limits: proxy.NewLimits(&proxy.LimitsOptions{SessionsPerMailbox: 1 << 20}),
				Meter: meter, Logger: discard})
			var n atomic.Uint32
			b.RunParallel(func(pb *testing.PB) {
				remote := netip.AddrFrom4([4]byte{192, 0, 2, byte(n.Add(1))})
				req := &proxy.LoginRequest{Username: "alice@example.com", Password: "good",
					Proto: proxy.ProtoIMAP, Remote: remote}
				for pb.Next() {
					s, err := g.Login(context.Background(), req)
					if err != nil {
						b.Fatal(err)
					}
					s.End()
				}
			})
		})
	}
}

// BenchmarkGateLoginRatio reports the cost of metrics as one number, the
// time of a login with metrics over one without ("on/off"): blocks of
// logins alternate between two Gates, so that load from other processes
// falls on both alike.
func BenchmarkGateLoginRatio(b *testing.B) {
	gate := func(meter proxy.Meter) *proxy.Gate {
		return proxy.NewGate(&proxy.GateOptions{Authenticator: auth{}, Throttle: proxy.NewThrottle(nil),
			Limits: proxy.NewLimits(&proxy.LimitsOptions{SessionsPerMailbox: 1 << 20}), Meter: meter, Logger: discard})
	}
	gates := [2]*proxy.Gate{gate(nil), gate(New(&Options{}))}
	var took [2]time.Duration
	req := &proxy.LoginRequest{Username: "alice@example.com", Password: "good", Proto: proxy.ProtoIMAP,
		Remote: netip.MustParseAddr("192.0.2.1")}
	const block = 500
	for i := 0; i < b.N; i += block {
		for k, g := range gates {
			start := time.Now()
			for range block {
				s, err := g.Login(context.Background(), req)
				if err != nil {
					b.Fatal(err)
				}
				s.End()
			}
			took[k] += time.Since(start)
		}
	}
	b.ReportMetric(float64(took[1])/float64(took[0]), "on/off")
}
