package main

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"mailgate/internal/fakeidp"
	"mailgate/internal/mailstack"
	"mailgate/internal/pgtest"
	"mailgate/internal/testenv"
)

// rotationLogins is how many clients log in at once after the access token
// expired, spread over the instances (issue 15).
const rotationLogins = 50

// rotationTTL is the access tokens' lifetime at the provider: short, so that
// the test can wait for a real expiry (the store's shared token then says
// expired too, as in production), long enough that the token one refresh
// gives lasts through the 50 logins (the cache replaces a short-lived
// token half way through its life).
const rotationTTL = 16 * time.Second

// TestE2EPostgresRotation: two daemons on one database, the mailbox's
// access token expired (its lifetime passed), 50 IMAP logins at once spread
// over both. fakeidp rotates the refresh token on every use and refuses a used
// one, so a second refresh from the other instance with the old token would
// fail and mark the mailbox for relinking: exactly one refresh must happen,
// and every login must succeed. After a restart of both daemons (cold
// caches) and another expiry, logins work with the rotated token.
func TestE2EPostgresRotation(t *testing.T) {
	env := newRotationEnv(t)
	in := env.rotationInstances(t, 2)
	const user = "rotate@example.com"
	pass := in[0].user(user) // linked and issued through A
	for _, e := range in {   // both caches warm
		if code := e.imapLoginCode(user, pass); code != "" {
			t.Fatalf("first login on %s: NO [%s]", e.imaps, code)
		}
	}
	before := env.idp.Refreshes(user)
	time.Sleep(rotationTTL) // every access token handed out so far expires
	concurrentLogins(t, in, user, pass)
	if got := env.idp.Refreshes(user) - before; got != 1 {
		t.Fatalf("%d refreshes for %d concurrent logins over 2 instances, want 1", got, rotationLogins)
	}
	for _, e := range in {
		e.restart()
	}
	env.idp.ExpireAccessTokens() // the rotated refresh token is the only way in
	before = env.idp.Refreshes(user)
	for _, e := range in {
		if code := e.imapLoginCode(user, pass); code != "" {
			t.Fatalf("login on %s after restarting both: NO [%s]", e.imaps, code)
		}
	}
	if got := env.idp.Refreshes(user) - before; got != 1 {
		t.Fatalf("%d refreshes after the restart, want 1", got)
	}
	if a := in[1].account(user); a.NeedsRelink {
		t.Fatalf("mailbox marked for relinking: %+v", a)
	}
}

// concurrentLogins logs in rotationLogins clients at once, alternating
// between the instances, each selecting INBOX; every one must succeed.
func concurrentLogins(t *testing.T, in []*e2e, user, pass string) {
	t.Helper()
	var (
		ready, wg sync.WaitGroup
		start     = make(chan struct{})
	)
	for i := range rotationLogins {
		e := in[i%len(in)]
		ready.Add(1)
		wg.Go(func() {
			c, err := imapclient.DialTLS(e.imaps, &imapclient.Options{TLSConfig: e.tls})
			ready.Done()
			if err != nil {
				t.Errorf("dial %s: %v", e.imaps, err)
				return
			}
			defer c.Close()
			<-start // every client connected: the logins race
			if err := c.Login(user, pass).Wait(); err != nil {
				t.Errorf("login %d on %s: %v", i, e.imaps, err)
				return
			}
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Errorf("select %d on %s: %v", i, e.imaps, err)
			}
			c.Logout().Wait()
		})
	}
	ready.Wait()
	close(start)
	wg.Wait()
}

// newRotationEnv is newPGEnv with a Dovecot that accepts the 50 sessions
// of one user from one address (its default is 10).
func newRotationEnv(t *testing.T) *pgEnv {
	t.Helper()
	if err := mailstack.Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	testenv.NeedRoot(t)
	mailgateBinary(t)
	_, ctl := pgtest.Start(t)
	idp, err := fakeidp.NewServer(&fakeidp.Options{AccessTTL: rotationTTL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	stack, err := mailstack.Start(&mailstack.Options{IntrospectionURL: idp.IntrospectURL(),
		Dir: t.TempDir(), MaxSessions: 2 * rotationLogins, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stack.Stop(); err != nil {
			t.Error(err)
		}
	})
	return &pgEnv{ctl: ctl, idp: idp, stack: stack}
}

// rotationInstances starts n daemons on one fresh database whose limits let
// one mailbox hold all of rotationLogins' sessions on one instance (the
// default upstream_sessions_per_mailbox is Exchange Online's 20).
func (p *pgEnv) rotationInstances(t *testing.T, n int) []*e2e {
	t.Helper()
	pg := p.database(t)
	out := make([]*e2e, n)
	for i := range out {
		e := &e2e{t: t, opts: e2eOpts{pg: pg}, idp: p.idp, stack: p.stack, dir: t.TempDir()}
		e.ca, e.tls = writeCert(t, e.dir)
		e.writeConfig()
		e.appendConfig("limits:\n  upstream_sessions_per_mailbox: 100\n")
		e.start()
		out[i] = e
	}
	return out
}

// appendConfig adds a top-level section to e's config file.
func (e *e2e) appendConfig(section string) {
	e.t.Helper()
	f, err := os.OpenFile(e.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(section); err != nil {
		e.t.Fatal(err)
	}
}
