package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-smtp"
)

// outageDown is how long the database stays down: long enough for every
// pooled connection and the change feed to notice, as in a failover.
const outageDown = 10 * time.Second

// recoverBound is the promise: logins work again within 15 s of
// the database's return, with no restart. Polled, never slept.
const recoverBound = 15 * time.Second

// TestE2EPostgresOutage: PostgreSQL stops for 10 s under two instances. A
// live IMAP session goes on; new logins get NO [UNAVAILABLE] and SMTP 454
// 4.7.0, never "authentication failed", and more of them than the throttle
// allows failures do not lock the client out; once the database is back,
// logins work again without restarting mailgate, and a revoke made then
// still reaches the other instance.
func TestE2EPostgresOutage(t *testing.T) {
	env := newPGEnv(t) // a cluster of its own: it is stopped
	in := env.instances(t, 2)
	a, b := in[0], in[1]
	ready := a.startWith(readyConfig) + "/readyz"
	if code := httpStatus(t, ready); code != http.StatusOK {
		t.Fatalf("/readyz with the database up: %d, want 200", code)
	}
	const user = "outage@example.com"
	a.mustLink(user)
	pass, id := a.appPassword(user)
	live := b.loginIMAP(user, pass, nil)
	if _, err := live.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	if err := env.ctl.Stop(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	// 12 refusals: more than limits.max_failures (10), so had they counted
	// as failed logins the client would now be locked out.
	for i := range 12 {
		e := in[i%2]
		start := time.Now()
		if code := e.imapLoginCode(user, pass); code != "UNAVAILABLE" {
			t.Fatalf("IMAP login %d with the database down: %q, want UNAVAILABLE", i, code)
		}
		t.Logf("IMAP login refused UNAVAILABLE in %v", time.Since(start).Round(time.Millisecond))
	}
	if code, enh := b.smtpAuthCode(user, pass); code != 454 || enh != (smtp.EnhancedCode{4, 7, 0}) {
		t.Fatalf("SMTP AUTH with the database down: %d %v, want 454 4.7.0", code, enh)
	}
	if err := live.Noop().Wait(); err != nil {
		t.Fatalf("live session with the database down: %v", err)
	}
	if _, err := live.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait(); err != nil {
		t.Fatalf("live session STATUS with the database down: %v", err)
	}
	if code := httpStatus(t, ready); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the database down: %d, want 503", code)
	}
	time.Sleep(max(0, outageDown-time.Since(down))) // the outage's length, not a wait for a result
	for _, e := range in {
		if line := e.d.logText(); containsAll(line, []string{`"msg":"login failed"`, user}) {
			t.Fatalf("a refusal while the database was down was logged as a failed login:\n%s", line)
		}
	}

	if err := env.ctl.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	for i, e := range in {
		took := pollLogin(t, e, user, pass)
		t.Logf("instance %d: logins work again %v after the database returned", i, took.Round(time.Millisecond))
	}
	if err := live.Noop().Wait(); err != nil {
		t.Fatalf("live session after the outage: %v", err)
	}
	if code := httpStatus(t, ready); code != http.StatusOK {
		t.Fatalf("/readyz after the database returned: %d, want 200", code)
	}
	a.mustCLI("password", "revoke", user, id)
	took := waitEnded(t, live, time.Now(), "revoke on A after the outage")
	t.Logf("after the outage (%v ago), a revoke on A ended B's session in %v", time.Since(back).Round(time.Second), took.Round(time.Millisecond))
}

// pollLogin logs in on e until it works, failing after recoverBound.
func pollLogin(t *testing.T, e *e2e, user, pass string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		code := e.imapLoginCode(user, pass)
		if code == "" {
			return time.Since(start)
		}
		if code != "UNAVAILABLE" {
			t.Fatalf("login after the database returned: %q, want OK or UNAVAILABLE", code)
		}
		if time.Since(start) > recoverBound {
			t.Fatalf("logins still UNAVAILABLE %v after the database returned", recoverBound)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// httpStatus is the status of a GET of url.
func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
