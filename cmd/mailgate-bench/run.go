package main

import (
	"fmt"
	"path/filepath"
	"time"
)

// run sets up the upstream and measures every row.
func run(cfg *config) (*report, error) {
	e, err := setup(cfg)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	defer e.close()
	rep := newReport(cfg)
	ch, err := startChild(e.childConfig(e.stack.IMAPS, e.stack.SubmissionS, cfg.warm))
	if err != nil {
		return nil, err
	}
	defer ch.stop()
	steps := []struct {
		name string
		run  func(*env, *child, *report) error
	}{{"throughput", rowThroughput}, {"latency", rowLatency}, {"rate", rowRate}, {"smtp", rowSMTP}}
	var ok string
	if cfg.cpuprofile != "" {
		p, _ := filepath.Abs(cfg.cpuprofile)
		ch.command("cpuprofile "+p, &ok)
	}
	for _, step := range steps {
		if !cfg.wants(step.name) {
			continue
		}
		if err := step.run(e, ch, rep); err != nil {
			return nil, err
		}
	}
	if cfg.cpuprofile != "" {
		ch.command("stopprofile", &ok)
	}
	ch.stop()
	if cfg.wants("idle") {
		if err := rowIdle(e, rep); err != nil {
			return nil, err
		}
	}
	if cfg.far && cfg.wants("far") {
		rowFar(e, rep)
	}
	return rep, nil
}

func rowThroughput(e *env, ch *child, rep *report) error {
	logf("throughput: FETCH %d MiB, APPEND %d MiB, %d passes", e.cfg.fetchMB, e.cfg.appendMB, e.cfg.passes)
	fetch, appnd, err := throughput(e, []path{
		{"direct", e.stack.IMAPS, e.direct},
		{"mailgate", ch.addrs.IMAP, e.viaMailgate},
		{"relay", ch.addrs.Relay, e.direct},
	})
	if err != nil {
		return err
	}
	rep.add(row{Name: fmt.Sprintf("FETCH %d MiB mailbox", e.cfg.fetchMB), Unit: "MiB/s", Direct: fetch["direct"],
		Mailgate: fetch["mailgate"], Relay: fetch["relay"], HigherBetter: true})
	rep.add(row{Name: fmt.Sprintf("APPEND %d MiB", e.cfg.appendMB), Unit: "MiB/s", Direct: appnd["direct"],
		Mailgate: appnd["mailgate"], Relay: appnd["relay"], HigherBetter: true})
	return nil
}

func rowLatency(e *env, ch *child, rep *report) error {
	logf("login latency: %d logins per path", e.cfg.logins)
	d, err := loginTimes(e.stack.IMAPS, e.clientTL, e.direct, e.cfg.logins)
	if err != nil {
		return fmt.Errorf("direct login: %w", err)
	}
	m, err := loginTimes(ch.addrs.IMAP, e.clientTL, e.viaMailgate, e.cfg.logins)
	if err != nil {
		return fmt.Errorf("mailgate login: %w", err)
	}
	rep.latency(fmt.Sprintf("login p50, loopback, %d warm upstream conns", e.cfg.warm), "ms", d, m, 0.5)
	rep.latency(fmt.Sprintf("login p99, loopback, %d warm upstream conns", e.cfg.warm), "ms", d, m, 0.99)
	if e.cfg.warm == 0 {
		return nil
	}
	cold, err := startChild(e.childConfig(e.stack.IMAPS, "", 0))
	if err != nil {
		return err
	}
	defer cold.stop()
	if m, err = loginTimes(cold.addrs.IMAP, e.clientTL, e.viaMailgate, e.cfg.logins); err != nil {
		return fmt.Errorf("mailgate login: %w", err)
	}
	rep.latency("login p50, loopback, no warm upstream conns", "ms", d, m, 0.5)
	return nil
}

func rowRate(e *env, ch *child, rep *report) error {
	logf("login rate: levels %v, %v each", e.cfg.rateLevels, e.cfg.rateFor)
	best := map[string]rateResult{}
	var at50 map[string]rateResult
	for _, conc := range e.cfg.rateLevels {
		r := map[string]rateResult{
			"direct":   loginRate(e.stack.IMAPS, e.clientTL, e.direct, conc, e.cfg.rateFor),
			"mailgate": loginRate(ch.addrs.IMAP, e.clientTL, e.viaMailgate, conc, e.cfg.rateFor),
		}
		for k, v := range r {
			rep.Rates[k] = append(rep.Rates[k], v)
			if v.P99ms <= 100 && v.PerSecond > best[k].PerSecond {
				best[k] = v
			}
		}
		at50 = r
	}
	last := e.cfg.rateLevels[len(e.cfg.rateLevels)-1]
	rep.add(row{Name: fmt.Sprintf("logins/s at %d concurrent", last), Unit: "1/s",
		Direct: at50["direct"].PerSecond, Mailgate: at50["mailgate"].PerSecond, HigherBetter: true,
		Note: fmt.Sprintf("p99 %.0f ms direct, %.0f ms mailgate", at50["direct"].P99ms, at50["mailgate"].P99ms)})
	rep.add(row{Name: "best logins/s with p99 <= 100 ms", Unit: "1/s",
		Direct: best["direct"].PerSecond, Mailgate: best["mailgate"].PerSecond, HigherBetter: true,
		Note: fmt.Sprintf("at %d / %d concurrent", best["direct"].Concurrency, best["mailgate"].Concurrency)})
	return nil
}

func rowSMTP(e *env, ch *child, rep *report) error {
	logf("smtp: %d x 10 KB, 1 x %d MiB", e.cfg.smtpMsgs, e.cfg.bigMB)
	dr, db, err := smtpRun(e.stack.SubmissionS, e.clientTL, e.direct(), e.cfg.smtpMsgs, e.cfg.bigMB)
	if err != nil {
		return fmt.Errorf("direct smtp: %w", err)
	}
	mr, mb, err := smtpRun(ch.addrs.SMTP, e.clientTL, e.viaMailgate(), e.cfg.smtpMsgs, e.cfg.bigMB)
	if err != nil {
		return fmt.Errorf("mailgate smtp: %w", err)
	}
	rep.add(row{Name: "SMTP 10 KB messages", Unit: "msg/s", Direct: dr, Mailgate: mr, HigherBetter: true})
	rep.add(row{Name: fmt.Sprintf("SMTP one %d MiB message", e.cfg.bigMB), Unit: "s", Direct: db, Mailgate: mb})
	return nil
}

// rowIdle measures idle sessions against Dovecot and against the lighter
// in-process upstream, each with a fresh child so the baseline is clean.
func rowIdle(e *env, rep *report) error {
	ch, err := startChild(e.childConfig(e.stack.IMAPS, "", 0))
	if err != nil {
		return err
	}
	logf("idle: %d sessions against Dovecot", e.cfg.dovecotSessions)
	r, err := idleSessions(ch, e.clientTL, e.viaMailgate(), e.cfg.dovecotSessions, e.cfg.idleWindow)
	ch.stop()
	if err != nil {
		return fmt.Errorf("idle dovecot: %w", err)
	}
	r.Upstream = "Dovecot (client_limit raised)"
	rep.Idle = append(rep.Idle, *r)
	addr, stop, err := e.startDevup()
	if err != nil {
		return err
	}
	defer stop()
	ch, err = startChild(e.childConfig(addr, "", 0))
	if err != nil {
		return err
	}
	defer ch.stop()
	n := e.cfg.devupSessions
	if m := maxSessions(); n > m {
		rep.Notes = append(rep.Notes, fmt.Sprintf("idle: %d sessions asked, %d measured: RLIMIT_NOFILE allows no more (two sockets per session; the hard limit here cannot be raised)", n, m))
		n = m
	}
	logf("idle: %d sessions against the in-process go-imap upstream", n)
	r, err = idleSessions(ch, e.clientTL, e.viaMailgate(), n, e.cfg.idleWindow)
	if err != nil {
		return fmt.Errorf("idle devup: %w", err)
	}
	r.Upstream = "in-process go-imap (internal/devup)"
	rep.Idle = append(rep.Idle, *r)
	return nil
}

// rowFar measures login latency with the upstream 40 ms away, mailgate
// with and without warm upstream connections. It is skipped, with the
// reason, when the namespace cannot be made.
func rowFar(e *env, rep *report) {
	addr, how, stop, err := farUpstreamAddr(e.stack.IMAPS)
	if err != nil {
		rep.Skipped = append(rep.Skipped, fmt.Sprintf("login with upstream 40 ms away: %v", err))
		return
	}
	defer stop()
	rep.Notes = append(rep.Notes, "40 ms away: "+how)
	n := max(e.cfg.logins/5, 10)
	logf("far: %d logins per path, upstream %s (40 ms round trip, %s)", n, addr, how)
	d, err := loginTimes(addr, e.clientTL, e.direct, n)
	if err != nil {
		rep.Skipped = append(rep.Skipped, fmt.Sprintf("far direct: %v", err))
		return
	}
	for _, warm := range []int{0, max(e.cfg.warm, 1)} {
		ch, err := startChild(e.childConfig(addr, "", warm))
		if err != nil {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("far mailgate: %v", err))
			return
		}
		loginTimes(ch.addrs.IMAP, e.clientTL, e.viaMailgate, 1) // warm the token cache
		time.Sleep(200 * time.Millisecond)
		m, err := loginTimesSpaced(ch.addrs.IMAP, e, n)
		ch.stop()
		if err != nil {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("far mailgate: %v", err))
			return
		}
		name := fmt.Sprintf("login p50, upstream 40 ms away, %d warm upstream conns", warm)
		rep.latency(name, "ms", d, m, 0.5)
	}
}

// loginTimesSpaced logs in n times with a pause between logins, as real
// clients arrive, so warm connections have time to be replaced.
func loginTimesSpaced(addr string, e *env, n int) ([]time.Duration, error) {
	var out []time.Duration
	for range n {
		t, err := loginTimes(addr, e.clientTL, e.viaMailgate, 1)
		if err != nil {
			return nil, err
		}
		out = append(out, t...)
		time.Sleep(150 * time.Millisecond)
	}
	return out, nil
}

// farUpstreamAddr puts Dovecot 40 ms away: tc netem in a network namespace,
// or, where the kernel has no netem, the user-space delay line.
func farUpstreamAddr(target string) (addr, how string, stop func(), err error) {
	far, nsErr := startFar(target)
	if nsErr == nil {
		return far.addr(), "network namespace, veth with tc netem delay 20ms each way", far.stop, nil
	}
	ln, err := startDelayed(target)
	if err != nil {
		return "", "", nil, err
	}
	how = fmt.Sprintf("user-space delay line (20 ms each way, +40 ms for the TCP handshake) because the namespace failed: %v", nsErr)
	return ln.Addr().String(), how, func() { ln.Close() }, nil
}
