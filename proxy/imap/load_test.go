package imap

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mailgate/proxy"
)

// TestLoadThrottle is the loopback load script of docs/security.md
// section: 200 wrong passwords from 10 attacker addresses (20 each, 10 at a
// time) against one mailbox, while its owner logs in 20 times from the
// address they used before. Run it with -v to see the counts. Delays are
// shortened to a millisecond; the limits are the defaults.
func TestLoadThrottle(t *testing.T) {
	th := proxy.NewThrottle(&proxy.ThrottleOptions{FailureDelay: time.Millisecond, MaxFailureDelay: time.Millisecond})
	h := newHardEnv(t, th, nil)
	const owner = "198.51.100.1"
	if r := h.from(owner).cmd("LOGIN ann@example.com good"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("owner's first login: %q", r)
	}
	var failed, refused, ownerOK, ownerRefused atomic.Int32
	var wg sync.WaitGroup
	for a := range 10 {
		wg.Go(func() {
			for range 20 {
				c := h.from(fmt.Sprintf("203.0.113.%d", a))
				switch r := c.cmd("LOGIN ann@example.com wrong"); r {
				case replyFailed:
					failed.Add(1)
				case replyUnavailable:
					refused.Add(1)
				default:
					t.Errorf("attacker got %q", r)
				}
				c.nc.Close()
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			c := h.from(owner)
			if r := c.cmd("LOGIN ann@example.com good"); strings.HasPrefix(r, "OK") {
				ownerOK.Add(1)
			} else {
				ownerRefused.Add(1)
			}
			c.nc.Close()
		}
	})
	wg.Wait()
	checked := int(h.auth.calls.Load()) - 1 - int(ownerOK.Load()) - int(ownerRefused.Load())
	t.Logf("attacker: %d wrong passwords checked and refused, %d refused unchecked (%d Authenticator calls); owner: %d logins ok, %d refused",
		failed.Load(), refused.Load(), checked, ownerOK.Load(), ownerRefused.Load())
	if ownerRefused.Load() != 0 {
		t.Errorf("owner refused %d times during the attack", ownerRefused.Load())
	}
	// The mailbox locks after DefaultMaxMailboxFailures; attempts already
	// past Check when it locked (at most one per attacker) still count.
	if max := proxy.DefaultMaxMailboxFailures + 10; checked > max {
		t.Errorf("%d guesses checked, want at most %d", checked, max)
	}
	if failed.Load()+refused.Load() != 200 {
		t.Errorf("%d attempts answered, want 200", failed.Load()+refused.Load())
	}
}
