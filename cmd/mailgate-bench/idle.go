package main

import (
	"crypto/tls"
	"fmt"
	"sync"
	"syscall"
	"time"
)

// idleResult is the cost of idle relayed sessions in the mailgate daemon.
type idleResult struct {
	Upstream     string  `json:"upstream"`
	Sessions     int     `json:"sessions"`
	RSSPerKiB    float64 `json:"rss_kib_per_session"`
	GoroutinesPS float64 `json:"goroutines_per_session"`
	IdleCPUPct   float64 `json:"idle_cpu_percent"`
	OpenSeconds  float64 `json:"open_seconds"`
}

// idleSessions opens n TLS sessions through the daemon, each logged in,
// SELECTed and in IDLE, and reads the daemon's cost per session: RSS from
// /proc at the end of the idle window less the RSS before (what the machine
// pays), CPU time over the window from /proc/PID/stat, and the sessions'
// goroutines from the dump the daemon prints on SIGQUIT. The dump ends the
// daemon.
func idleSessions(d *daemon, cfg *tls.Config, n int, window time.Duration, heapProfile bool) (*idleResult, error) {
	warm, err := loginIMAP(d.imap, cfg, d.login()) // token cache warm
	if err != nil {
		return nil, err
	}
	warm.Close()
	time.Sleep(200 * time.Millisecond)
	rss0, _ := d.rss()
	t0 := time.Now()
	conns, err := openIdle(d.imap, cfg, d.login(), n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	open := time.Since(t0)
	if heapProfile {
		d.signal(syscall.SIGUSR2) // the profile hook writes it
	}
	time.Sleep(3 * time.Second) // the relays settle into their reads
	settle(d, 3*window)
	cpu0, _ := d.cpu()
	time.Sleep(window)
	cpu1, _ := d.cpu()
	rss1, err := d.rss()
	if err != nil {
		return nil, err
	}
	dump, err := d.goroutineDump()
	if err != nil {
		return nil, err
	}
	f := float64(n)
	return &idleResult{Sessions: n,
		RSSPerKiB:    float64(rss1-rss0) / 1024 / f,
		GoroutinesPS: float64(sessionGoroutines(dump, n)) / f,
		IdleCPUPct:   100 * (cpu1 - cpu0).Seconds() / window.Seconds(),
		OpenSeconds:  open.Seconds(),
	}, nil
}

// settle waits, at most limit, until the daemon used no CPU for a second.
// A GC cycle the logins started and the scavenger returning what they left
// (it paces itself to about 1% of a core) are not what idle sessions cost;
// the old in-process child forced a GC instead, which a real daemon cannot
// be asked to do.
func settle(d *daemon, limit time.Duration) {
	deadline := time.Now().Add(limit)
	prev, _ := d.cpu()
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		cur, _ := d.cpu()
		if cur == prev {
			return
		}
		prev = cur
	}
}

// openIdle opens n idle sessions, 50 at a time.
func openIdle(addr string, cfg *tls.Config, l login, n int) ([]*imapc, error) {
	conns := make([]*imapc, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := loginIMAP(addr, cfg, l)
			if err == nil {
				err = c.idle()
			}
			if err != nil {
				errs <- fmt.Errorf("session %d: %w", i, err)
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	close(errs)
	var out []*imapc
	for _, c := range conns {
		if c != nil {
			out = append(out, c)
		}
	}
	return out, <-errs
}
