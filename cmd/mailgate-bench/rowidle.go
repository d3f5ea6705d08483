package main

import (
	"fmt"
	"time"
)

// rowIdle measures idle sessions against Dovecot and against the lighter
// in-process upstream, each with a fresh daemon so the baseline is clean.
func rowIdle(e *env, rep *report) error {
	logf("idle: %d sessions against Dovecot", e.cfg.dovecotSessions)
	r, err := idleAgainst(e, e.stack.IMAPS, e.cfg.dovecotSessions)
	if err != nil {
		return fmt.Errorf("idle dovecot: %w", err)
	}
	r.Upstream = "Dovecot (client_limit raised)"
	rep.Idle = append(rep.Idle, *r)
	addr, stop, err := startHelper("devup " + e.certFile + " " + e.keyFile)
	if err != nil {
		return err
	}
	defer stop()
	n := e.cfg.devupSessions
	if m := maxSessions(); n > m {
		rep.Notes = append(rep.Notes, fmt.Sprintf("idle: %d sessions asked, %d measured: RLIMIT_NOFILE allows no more (two sockets per session; the hard limit here cannot be raised)", n, m))
		n = m
	}
	logf("idle: %d sessions against the in-process go-imap upstream", n)
	if r, err = idleAgainst(e, addr, n); err != nil {
		return fmt.Errorf("idle devup: %w", err)
	}
	r.Upstream = "in-process go-imap (internal/devup)"
	rep.Idle = append(rep.Idle, *r)
	return nil
}

// idleAgainst starts a daemon in front of upstream and holds n idle
// sessions through it.
func idleAgainst(e *env, upstream string, n int) (*idleResult, error) {
	d, err := e.newDaemon(upstream)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	return idleSessions(d, e.clientTL, n, e.cfg.idleWindow, e.cfg.heapprofile != "")
}

// rowFar measures login latency with the upstream 40 ms away. It is
// skipped, with the reason, when neither the namespace nor the delay line
// can be made.
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
	dt, err := loginTimes(addr, e.clientTL, e.direct, n)
	if err != nil {
		rep.Skipped = append(rep.Skipped, fmt.Sprintf("far direct: %v", err))
		return
	}
	d, err := e.newDaemon(addr)
	if err != nil {
		rep.Skipped = append(rep.Skipped, fmt.Sprintf("far mailgate: %v", err))
		return
	}
	defer d.stop()
	loginTimes(d.imap, e.clientTL, d.login, 1) // warm the token cache
	time.Sleep(200 * time.Millisecond)
	mt, err := loginTimesSpaced(d, e, n)
	if err != nil {
		rep.Skipped = append(rep.Skipped, fmt.Sprintf("far mailgate: %v", err))
		return
	}
	rep.latency("login p50, upstream 40 ms away", "ms", dt, mt, 0.5)
}

// loginTimesSpaced logs in n times with a pause between logins, as real
// clients arrive, so warm connections have time to be replaced.
func loginTimesSpaced(d *daemon, e *env, n int) ([]time.Duration, error) {
	var out []time.Duration
	for range n {
		t, err := loginTimes(d.imap, e.clientTL, d.login, 1)
		if err != nil {
			return nil, err
		}
		out = append(out, t...)
		time.Sleep(150 * time.Millisecond)
	}
	return out, nil
}

// farUpstreamAddr puts Dovecot 40 ms away: tc netem in a network namespace,
// or, where the kernel has no netem, the user-space delay line. Either is
// reached on a loopback address, which the stack's certificate names.
func farUpstreamAddr(target string) (addr, how string, stop func(), err error) {
	far, nsErr := startFar(target)
	if nsErr == nil {
		return far.loopback(), "network namespace, veth with tc netem delay 20ms each way", far.stop, nil
	}
	ln, err := startDelayed(target)
	if err != nil {
		return "", "", nil, err
	}
	how = fmt.Sprintf("user-space delay line (20 ms each way, +40 ms for the TCP handshake) because the namespace failed: %v", nsErr)
	return ln.Addr().String(), how, func() { ln.Close() }, nil
}
