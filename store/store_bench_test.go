package store

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// benchStore returns a store whose mailbox a@example.com has a few
// passwords, and the secret of one of them.
func benchStore(b *testing.B) (*Store, string) {
	b.Helper()
	dir := b.TempDir()
	s, err := Open(&Options{Path: dir + "/b.db", KeyFile: dir + "/b.key", FlushInterval: time.Hour})
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

func BenchmarkVerify(b *testing.B) {
	s, secret := benchStore(b)
	for b.Loop() {
		if _, err := s.Verify("a@example.com", secret, ScopeIMAP, "192.0.2.1"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyWrongPassword(b *testing.B) {
	s, _ := benchStore(b)
	wrong := newSecret()
	for b.Loop() {
		s.Verify("a@example.com", wrong, ScopeIMAP, "192.0.2.1")
	}
}

func BenchmarkVerifyUnknownUser(b *testing.B) {
	s, secret := benchStore(b)
	for b.Loop() {
		s.Verify("nobody@example.com", secret, ScopeIMAP, "192.0.2.1")
	}
}

// BenchmarkVerifyTimingRatio alternates a wrong password for a known mailbox
// with a login for an unknown one, so both see the same machine state, and
// reports the median time of each and unknown/wrong. Medians, because on a
// shared machine a few preempted calls would dominate a mean. A ratio near 1
// means timing does not tell an attacker whether a mailbox exists. It
// reports and never asserts: timings are not a test oracle.
func BenchmarkVerifyTimingRatio(b *testing.B) {
	b.Run("passwords=3", func(b *testing.B) { benchRatio(b, 3) })
	b.Run("passwords=max", func(b *testing.B) { benchRatio(b, DefaultMaxPasswords) })
}

func benchRatio(b *testing.B, passwords int) {
	s, _ := benchStore(b)
	ratioOf(b, s, passwords)
}

// ratioOf measures s, whose mailbox a@example.com has three passwords, with
// passwords in all.
func ratioOf(b *testing.B, s *Store, passwords int) {
	for i := 3; i < passwords; i++ {
		if _, _, err := s.CreatePassword("a@example.com", fmt.Sprint(i), nil, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	wrong := newSecret()
	var tWrong, tUnknown []time.Duration
	timed := func(mailbox string) time.Duration {
		start := time.Now()
		s.Verify(mailbox, wrong, ScopeIMAP, "192.0.2.1")
		return time.Since(start)
	}
	for i := 0; b.Loop(); i++ {
		// Swap the order every other round so that neither kind always
		// pays for what the other left behind (caches, garbage).
		if i%2 == 0 {
			tWrong = append(tWrong, timed("a@example.com"))
			tUnknown = append(tUnknown, timed("nobody@example.com"))
		} else {
			tUnknown = append(tUnknown, timed("nobody@example.com"))
			tWrong = append(tWrong, timed("a@example.com"))
		}
	}
	w, u := median(tWrong), median(tUnknown)
	if w == 0 {
		return
	}
	b.ReportMetric(float64(w.Nanoseconds()), "wrong-median-ns")
	b.ReportMetric(float64(u.Nanoseconds()), "unknown-median-ns")
	b.ReportMetric(float64(u)/float64(w), "unknown/wrong")
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}
