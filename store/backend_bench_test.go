package store

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mailgate/internal/pgtest"
)

// benchBackends opens a bbolt store and a postgres store (throwaway
// cluster), each with three passwords of a@example.com, and returns them
// with one secret of each.
func benchBackends(b *testing.B) (bolt, pg *Store, boltSecret, pgSecret string) {
	b.Helper()
	_, cl := pgtest.Start(b)
	dir := b.TempDir()
	bo := &Options{Path: dir + "/b.db", KeyFile: dir + "/b.key", FlushInterval: time.Hour, Logger: quiet}
	po := &Options{Driver: DriverPostgres, DSN: cl.NewDatabase(b), KeyFile: dir + "/p.key",
		FlushInterval: time.Hour, Logger: quiet}
	open := func(o *Options) (*Store, string) {
		s, err := Open(o)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		var secret string
		for i := range 3 {
			if _, secret, err = s.CreatePassword("a@example.com", fmt.Sprint(i), nil, time.Time{}); err != nil {
				b.Fatal(err)
			}
		}
		return s, secret
	}
	bolt, boltSecret = open(bo)
	pg, pgSecret = open(po)
	return bolt, pg, boltSecret, pgSecret
}

// BenchmarkVerifyBackends reports the rate of successful Verify calls of
// each backend with 1, 20 and 50 callers at once, measured in turns within
// one benchmark so both see the same machine, and postgres/bbolt. It
// reports and never asserts. Verify is the store's whole share of a login;
// the login rate of the daemon (TLS, upstream) is cmd/mailgate-bench's.
func BenchmarkVerifyBackends(b *testing.B) {
	bolt, pg, bs, ps := benchBackends(b)
	for _, callers := range []int{1, 20, 50} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			var nBolt, nPG int64
			var dBolt, dPG time.Duration
			for b.Loop() {
				dBolt += verifyRound(b, bolt, bs, callers, &nBolt)
				dPG += verifyRound(b, pg, ps, callers, &nPG)
			}
			rBolt := float64(nBolt) / dBolt.Seconds()
			rPG := float64(nPG) / dPG.Seconds()
			b.ReportMetric(rBolt, "bbolt-verify/s")
			b.ReportMetric(rPG, "postgres-verify/s")
			b.ReportMetric(rPG/rBolt, "postgres/bbolt")
		})
	}
}

// verifyRound runs callers goroutines that each verify 20 times and
// returns the wall time taken; n counts the calls.
func verifyRound(b *testing.B, s *Store, secret string, callers int, n *int64) time.Duration {
	const perCaller = 20
	var wg sync.WaitGroup
	start := time.Now()
	for range callers {
		wg.Go(func() {
			for range perCaller {
				if _, err := s.Verify("a@example.com", secret, ScopeIMAP, "192.0.2.1"); err != nil {
					b.Error(err)
					return
				}
				atomic.AddInt64(n, 1)
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkVerifyTimingRatioPostgres is BenchmarkVerifyTimingRatio on
// postgres: a wrong password for a known mailbox against an unknown
// mailbox, medians and their ratio.
func BenchmarkVerifyTimingRatioPostgres(b *testing.B) {
	_, pg, _, _ := benchBackends(b)
	b.Run("passwords=3", func(b *testing.B) { ratioOf(b, pg, 3) })
	b.Run("passwords=max", func(b *testing.B) { ratioOf(b, pg, DefaultMaxPasswords) })
}
