package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"time"
)

// revokeWait bounds the wait for a revoked session to end; a session still
// open then counts as an error, not as a time.
const revokeWait = 30 * time.Second

// pgRevoke times, n times each and interleaved, how long an IDLE session
// lives after "mailgate password revoke" through instance a: with the
// session on a itself, and on b, which hears of it through the database.
func pgRevoke(e *env, rep *report, a, b *pgDaemon) error {
	n := cmp.Or(e.cfg.pg.revokes, pgRevokes)
	logf("postgres revoke to session end: %d revocations per instance", n)
	var same, other []time.Duration
	errs := 0
	for i := range 2 * n {
		on := a
		if i%2 == 1 {
			on = b
		}
		d, err := revokeOnce(e, a, on, i)
		switch {
		case err != nil:
			logf("revocation %d: %v", i, err)
			errs++
		case on == a:
			same = append(same, d)
		default:
			other = append(other, d)
		}
	}
	if errs > n/10 {
		return fmt.Errorf("revocations: %d of %d failed", errs, 2*n)
	}
	for _, p := range []float64{0.5, 0.99} {
		rep.add(row{Name: fmt.Sprintf("PostgreSQL: revoke to session end p%.0f, other instance (direct = same instance)", p*100),
			Unit: "ms", Direct: ms(percentile(same, p)), Mailgate: ms(percentile(other, p)),
			Note: fmt.Sprintf("goal p99 < 1000 ms; %d + %d revocations, %d errors; from the CLI's start", len(same), len(other), errs)})
	}
	return nil
}

// revokeOnce issues a password through a, holds an IDLE session with it on
// on, revokes it through a, and returns the time from starting the revoke
// command to the session's end as its client sees it (EOF).
func revokeOnce(e *env, a, on *pgDaemon, i int) (time.Duration, error) {
	pass, id, err := pgPassword(a, fmt.Sprintf("revoke-%d", i))
	if err != nil {
		return 0, err
	}
	c, err := loginIMAP(on.imap, e.clientTL, login{user: benchUser, pass: pass})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.idle(); err != nil {
		return 0, err
	}
	ended := make(chan error, 1)
	c.nc.SetReadDeadline(time.Now().Add(revokeWait))
	go func() {
		_, err := io.Copy(io.Discard, c.br) // a BYE, then EOF
		ended <- err
	}()
	t0 := time.Now()
	if _, err := pgCLI(a, "password", "revoke", benchUser, id); err != nil {
		return 0, fmt.Errorf("password revoke: %w", err)
	}
	err = <-ended
	took := time.Since(t0)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return 0, fmt.Errorf("session on %s still open %v after the revoke", on.imap, revokeWait)
	}
	return took, nil
}

// pgPassword runs "mailgate password create -json" through d.
func pgPassword(d *pgDaemon, name string) (pass, id string, err error) {
	out, err := pgCLI(d, "password", "create", "-json", "-name", name, benchUser)
	var p struct{ Password, ID string }
	if err == nil && (json.Unmarshal(out, &p) != nil || p.Password == "") {
		err = fmt.Errorf("no password in %q", out)
	}
	if err != nil {
		return "", "", fmt.Errorf("password create: %w", err)
	}
	return p.Password, p.ID, nil
}

// pgCLI runs the mailgate CLI with d's config, so that it talks to d's
// socket, and returns its standard output.
func pgCLI(d *pgDaemon, args ...string) ([]byte, error) {
	cmd := exec.Command(d.cmd.Path, args...)
	cmd.Env = d.env
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%w: %s", err, bytes.TrimSpace(errb.Bytes()))
	}
	return out, nil
}
