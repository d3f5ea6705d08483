package main

import (
	"crypto/tls"
	"fmt"
	"sync"
	"time"
)

// idleResult is the cost of idle relayed sessions in the mailgate child.
type idleResult struct {
	Upstream     string  `json:"upstream"`
	Sessions     int     `json:"sessions"`
	RSSPerKiB    float64 `json:"rss_kib_per_session"`
	HeapPerKiB   float64 `json:"heap_kib_per_session"`
	GoroutinesPS float64 `json:"goroutines_per_session"`
	IdleCPUPct   float64 `json:"idle_cpu_percent"`
	OpenSeconds  float64 `json:"open_seconds"`
}

// idleSessions opens n TLS sessions through the child, each logged in,
// SELECTed and in IDLE, and reads the child's cost per session. The
// differences to the baseline (child warm, no sessions) are what the
// sessions cost: RSS from /proc at the end of the idle window (what the
// machine pays), heap and stack in use after a GC (what Go holds),
// goroutines, and CPU time over the window from /proc/PID/stat.
func idleSessions(ch *child, cfg *tls.Config, l login, n int, window time.Duration) (*idleResult, error) {
	warm, err := loginIMAP(ch.addrs.IMAP, cfg, l) // token cache warm
	if err != nil {
		return nil, err
	}
	warm.Close()
	time.Sleep(200 * time.Millisecond)
	st0, err := ch.stats()
	if err != nil {
		return nil, err
	}
	rss0, _ := ch.rss()
	t0 := time.Now()
	conns, err := openIdle(ch.addrs.IMAP, cfg, l, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	open := time.Since(t0)
	time.Sleep(time.Second) // let the relays settle into their reads
	st1, err := ch.stats()
	if err != nil {
		return nil, err
	}
	rss1, _ := ch.rss()
	if heapProfile != "" {
		var ok string
		ch.command("heapprofile "+heapProfile, &ok)
	}
	// The GC that stats forced leaves the scavenger returning memory for a
	// moment: not what idle sessions cost, so wait for it before the window.
	time.Sleep(2 * time.Second)
	cpu0, _ := ch.cpu()
	time.Sleep(window)
	cpu1, _ := ch.cpu()
	// RSS again after the idle window: the runtime has returned what the
	// logins left over by then, so this is what idle sessions keep.
	if r, err := ch.rss(); err == nil {
		rss1 = r
	}
	f := float64(n)
	return &idleResult{Sessions: n,
		RSSPerKiB:    float64(rss1-rss0) / 1024 / f,
		HeapPerKiB:   float64(int64(st1.HeapInuse+st1.StackInuse)-int64(st0.HeapInuse+st0.StackInuse)) / 1024 / f,
		GoroutinesPS: float64(st1.Goroutines-st0.Goroutines) / f,
		IdleCPUPct:   100 * (cpu1 - cpu0).Seconds() / window.Seconds(),
		OpenSeconds:  open.Seconds(),
	}, nil
}

// heapProfile, if set, is where idleSessions writes mailgate's heap
// profile with the sessions open (flag -heapprofile).
var heapProfile string

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
