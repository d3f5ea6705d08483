package main

import (
	"crypto/tls"
	"fmt"
	"slices"
	"sync"
	"time"
)

// path is one way to the upstream's IMAP: direct, through mailgate, or
// through the plain TCP relay.
type path struct {
	name string
	addr string
	l    func() login
}

// throughput measures FETCH of the whole INBOX and APPEND of appendMB on
// each path, median of cfg.passes, interleaved so that noise spreads.
func throughput(e *env, paths []path) (fetch, appnd map[string]float64, err error) {
	fetch, appnd = map[string]float64{}, map[string]float64{}
	fs, as := map[string][]float64{}, map[string][]float64{}
	for pass := 0; pass < e.cfg.passes; pass++ {
		for _, p := range paths {
			f, a, err := transfer(e, p, pass)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", p.name, err)
			}
			fs[p.name], as[p.name] = append(fs[p.name], f), append(as[p.name], a)
		}
	}
	for _, p := range paths {
		fetch[p.name], appnd[p.name] = median(fs[p.name]), median(as[p.name])
	}
	return fetch, appnd, nil
}

// transfer returns FETCH and APPEND rates in MiB/s.
func transfer(e *env, p path, pass int) (float64, float64, error) {
	c, err := loginIMAP(p.addr, e.clientTL, p.l())
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	if _, err := c.cmd("SELECT INBOX"); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	n, err := c.cmd("FETCH 1:* BODY.PEEK[]")
	if err != nil {
		return 0, 0, err
	}
	fetch := mibps(n, time.Since(t0))
	box := fmt.Sprintf("Bench%d", pass)
	if _, err := c.cmd("CREATE " + box); err != nil {
		return 0, 0, err
	}
	msgs := appendSet(e.cfg.appendMB << 20)
	var total int64
	t0 = time.Now()
	for _, m := range msgs {
		if err := c.appendMsg(box, m); err != nil {
			return 0, 0, err
		}
		total += int64(len(m))
	}
	appnd := mibps(total, time.Since(t0))
	_, err = c.cmd("DELETE " + box)
	return fetch, appnd, err
}

func appendSet(total int) [][]byte {
	var out [][]byte
	for i, s := range mixedSizes(total) {
		out = append(out, message(i, s))
	}
	return out
}

func mibps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }

// loginTimes logs in n times in a row: TCP connect to the tagged OK.
func loginTimes(addr string, cfg *tls.Config, l func() login, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for range n {
		lg := l()
		t0 := time.Now()
		c, err := loginIMAP(addr, cfg, lg)
		if err != nil {
			return nil, err
		}
		out = append(out, time.Since(t0))
		c.Close()
	}
	return out, nil
}

// rateResult is one concurrency level of the login rate test.
type rateResult struct {
	Concurrency int     `json:"concurrency"`
	PerSecond   float64 `json:"logins_per_second"`
	P99ms       float64 `json:"p99_ms"`
	Errors      int     `json:"errors"`
}

// loginRate runs conc clients logging in back to back for d.
func loginRate(addr string, cfg *tls.Config, l func() login, conc int, d time.Duration) rateResult {
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for time.Now().Before(stop) {
				t, err := loginTimes(addr, cfg, l, 1)
				mu.Lock()
				if err != nil {
					errs++
				} else {
					lat = append(lat, t[0])
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return rateResult{Concurrency: conc, PerSecond: float64(len(lat)) / d.Seconds(),
		P99ms: ms(percentile(lat, 0.99)), Errors: errs}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// message10k returns a 10 KB message for the SMTP rate.
func message10k() []byte { return message(0, 10<<10) }
