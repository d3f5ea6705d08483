package main

import (
	"crypto/tls"
	"fmt"
	"slices"
	"sync"
	"time"
)

// path is one way to the upstream's IMAP: direct, through mailgate, or
// through the plain relay. cpu, when set, reads the CPU time of the process
// in the middle (mailgate, the relay).
type path struct {
	name string
	addr string
	l    func() login
	cpu  func() (time.Duration, error)
}

// flow is what one direction of one path measured over all passes.
type flow struct {
	rates []float64     // MiB/s per pass
	bytes int64         // moved in all passes
	cpu   time.Duration // of the process in the middle, all passes
}

// rate is the median pass.
func (f *flow) rate() float64 { return median(f.rates) }

// cpuPerGiB is the middle process's CPU-seconds per GiB moved; 0 without
// one.
func (f *flow) cpuPerGiB() float64 {
	if f.bytes == 0 {
		return 0
	}
	return f.cpu.Seconds() / (float64(f.bytes) / (1 << 30))
}

// add records one pass.
func (f *flow) add(x xfer) {
	f.rates = append(f.rates, mibps(x.bytes, x.dur))
	f.bytes += x.bytes
	f.cpu += x.cpu
}

// xfer is one timed transfer.
type xfer struct {
	bytes int64
	dur   time.Duration
	cpu   time.Duration // of the process in the middle
}

// throughput measures FETCH of the whole INBOX and APPEND of appendMB on
// each path, cfg.passes times, interleaved so that noise spreads.
func throughput(e *env, paths []path) (fetch, appnd map[string]*flow, err error) {
	fetch, appnd = map[string]*flow{}, map[string]*flow{}
	for _, p := range paths {
		fetch[p.name], appnd[p.name] = &flow{}, &flow{}
	}
	for pass := 0; pass < e.cfg.passes; pass++ {
		for _, p := range paths {
			f, a, err := transfer(e, p, pass)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", p.name, err)
			}
			fetch[p.name].add(f)
			appnd[p.name].add(a)
		}
	}
	return fetch, appnd, nil
}

// timed runs f and measures its time and the CPU time of p's middle
// process.
func (p path) timed(f func() (int64, error)) (xfer, error) {
	var c0, c1 time.Duration
	if p.cpu != nil {
		c0, _ = p.cpu()
	}
	t0 := time.Now()
	n, err := f()
	x := xfer{bytes: n, dur: time.Since(t0)}
	if p.cpu != nil {
		c1, _ = p.cpu()
		x.cpu = c1 - c0
	}
	return x, err
}

// transfer FETCHes the INBOX and APPENDs appendMB in one session.
func transfer(e *env, p path, pass int) (fetch, appnd xfer, err error) {
	c, err := loginIMAP(p.addr, e.clientTL, p.l())
	if err != nil {
		return fetch, appnd, err
	}
	defer c.Close()
	if _, err := c.cmd("SELECT INBOX"); err != nil {
		return fetch, appnd, err
	}
	if fetch, err = p.timed(func() (int64, error) { return c.cmd("UID FETCH 1:* BODY.PEEK[]") }); err != nil {
		return fetch, appnd, err
	}
	box := fmt.Sprintf("Bench%d", pass)
	if _, err := c.cmd("CREATE " + box); err != nil {
		return fetch, appnd, err
	}
	msgs := appendSet(e.cfg.appendMB << 20)
	appnd, err = p.timed(func() (int64, error) {
		var total int64
		for _, m := range msgs {
			if err := c.appendMsg(box, m); err != nil {
				return total, err
			}
			total += int64(len(m))
		}
		return total, nil
	})
	if err != nil {
		return fetch, appnd, err
	}
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
	// CPU per login, in ms: of the whole machine (every process, from
	// /proc/stat), and of the process in the middle (mailgate; 0 direct).
	MachineCPUms float64 `json:"machine_cpu_ms_per_login"`
	ProxyCPUms   float64 `json:"proxy_cpu_ms_per_login,omitempty"`
}

// loginRate runs conc clients logging in back to back for d, reading the
// machine's CPU time, and cpu's (nil: none) around the run.
func loginRate(addr string, cfg *tls.Config, l func() login, conc int, d time.Duration,
	cpu func() (time.Duration, error)) rateResult {
	m0, _ := machineCPU()
	var p0 time.Duration
	if cpu != nil {
		p0, _ = cpu()
	}
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
	r := rateResult{Concurrency: conc, PerSecond: float64(len(lat)) / d.Seconds(),
		P99ms: ms(percentile(lat, 0.99)), Errors: errs}
	if len(lat) == 0 {
		return r
	}
	if m1, err := machineCPU(); err == nil {
		r.MachineCPUms = ms(m1-m0) / float64(len(lat))
	}
	if cpu != nil {
		if p1, err := cpu(); err == nil {
			r.ProxyCPUms = ms(p1-p0) / float64(len(lat))
		}
	}
	return r
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
