package main

import (
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// TestE2ERevokeAllRacingLogins: six clients log in again and again while
// "password revoke-all" runs. Whatever stage a login had reached when the
// revoke committed (password check, token, upstream AUTHENTICATE, mailbox
// probe), no session authenticated with a revoked password survives it:
// every client that got OK is disconnected, and logins after it fail.
func TestE2ERevokeAllRacingLogins(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	const user = "racing@example.com"
	pass := e.user(user)

	endings, revoked := racingLogins(t, []*e2e{e}, user, pass, func() {
		e.mustCLI("password", "revoke-all", user)
	})
	slowest := waitEndings(t, endings, revoked, 30*time.Second)
	t.Logf("%d logins; every session closed within %v of revoke-all returning", len(endings), slowest.Round(time.Millisecond))
	if code := e.imapLoginCode(user, pass); code == "" {
		t.Fatal("login after revoke-all succeeded")
	}
}

// racingLogins runs six clients, spread over targets, that log in again and
// again (keeping one live session each), calls revoke once every client is
// in its loop, and returns when every client's login has failed. Each
// session that got OK has a channel that receives when it closed; revoked
// is when revoke returned.
func racingLogins(t *testing.T, targets []*e2e, user, pass string, revoke func()) (endings []chan time.Time, revoked time.Time) {
	t.Helper()
	var (
		mu      sync.Mutex
		started = make(chan struct{}, 6)
		wg      sync.WaitGroup
	)
	for i := range 6 {
		e := targets[i%len(targets)]
		wg.Go(func() {
			var prev *imapclient.Client
			for n := 0; n < 200; n++ { // bounded; a login fails once the revoke is in
				c, err := imapclient.DialTLS(e.imaps, &imapclient.Options{TLSConfig: e.tls})
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				t.Cleanup(func() { c.Close() })
				if err := c.Login(user, pass).Wait(); err != nil {
					c.Close()
					return
				}
				end := make(chan time.Time, 1)
				go func() { <-c.Closed(); end <- time.Now() }()
				mu.Lock()
				endings = append(endings, end)
				mu.Unlock()
				if prev != nil {
					prev.Logout().Wait() // keep one live session per client
				}
				prev = c
				if n == 1 {
					started <- struct{}{}
				}
			}
		})
	}
	for range 6 {
		<-started // every client is logging in in a loop
	}
	revoke()
	revoked = time.Now()
	wg.Wait()
	return endings, revoked
}

// waitEndings waits for every session of endings to close and returns the
// latest close after revoked (a session logged out before it counts as 0).
// bound is a hang guard, not a timing assertion.
func waitEndings(t *testing.T, endings []chan time.Time, revoked time.Time, bound time.Duration) time.Duration {
	t.Helper()
	var slowest time.Duration
	for _, end := range endings {
		select {
		case at := <-end:
			slowest = max(slowest, at.Sub(revoked))
		case <-time.After(bound):
			t.Fatalf("a session is still open %v after the revoke", bound)
		}
	}
	return slowest
}
