package main

import (
	"strings"
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

	var (
		mu       sync.Mutex
		sessions []*imapclient.Client // every client that logged in
		started  = make(chan struct{}, 6)
		wg       sync.WaitGroup
	)
	for range 6 {
		wg.Go(func() {
			var prev *imapclient.Client
			for i := 0; i < 200; i++ { // bounded; a login fails once the revoke is in
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
				mu.Lock()
				sessions = append(sessions, c)
				mu.Unlock()
				if prev != nil {
					prev.Logout().Wait() // keep one live session per client
				}
				prev = c
				if i == 1 {
					started <- struct{}{}
				}
			}
		})
	}
	for range 6 {
		<-started // every client is logging in in a loop
	}
	out := e.mustCLI("password", "revoke-all", user)
	revoked := time.Now()
	wg.Wait()

	var slowest time.Duration
	for _, c := range sessions {
		select {
		case <-c.Closed():
		case <-time.After(30 * time.Second): // hang guard, not a timing assertion
			t.Fatalf("a session of %s is still open 30 s after revoke-all (%s)", user, strings.TrimSpace(out))
		}
		slowest = max(slowest, time.Since(revoked))
	}
	t.Logf("%d logins; every session closed within %v of revoke-all returning", len(sessions), slowest.Round(time.Millisecond))
	if code := e.imapLoginCode(user, pass); code == "" {
		t.Fatal("login after revoke-all succeeded")
	}
}
