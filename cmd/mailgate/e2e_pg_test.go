package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// endBound is how long a test waits for a session to end before it fails:
// a guard against a hang, not the 2 s the issue asks for, which the tests
// log as measured (docs/testing.md: no timed assertions).
const endBound = 30 * time.Second

// waitEnded waits for c to be closed by mailgate and returns how long
// after since that was.
func waitEnded(t *testing.T, c *imapclient.Client, since time.Time, what string) time.Duration {
	t.Helper()
	select {
	case <-c.Closed():
		return time.Since(since)
	case <-time.After(endBound):
		t.Fatalf("%s: session still open %v later", what, endBound)
		return 0
	}
}

// idleSession logs in on e, selects INBOX and enters IDLE.
func idleSession(t *testing.T, e *e2e, user, pass string) *imapclient.Client {
	t.Helper()
	c := e.loginIMAP(user, pass, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Idle(); err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	return c
}

// TestE2EPostgres runs two and three daemons on one database (a fresh one
// per subtest, one cluster for all): what one instance or the CLI changes,
// every instance sees at once.
func TestE2EPostgres(t *testing.T) {
	env := newPGEnv(t)
	t.Run("CreateOnALoginOnBRevokeOnA", func(t *testing.T) {
		t.Parallel()
		in := env.instances(t, 2)
		a, b := in[0], in[1]
		const user = "ab@example.com"
		a.mustLink(user)
		pass, id := a.appPassword(user) // through A's socket
		c := idleSession(t, b, user, pass)
		a.mustCLI("password", "revoke", user, id)
		took := waitEnded(t, c, time.Now(), "revoke on A, IDLE on B")
		t.Logf("IDLE session on B ended %v after the revoke on A returned", took.Round(time.Millisecond))
		if code := b.imapLoginCode(user, pass); code != "AUTHENTICATIONFAILED" {
			t.Fatalf("login on B after the revoke: %q, want AUTHENTICATIONFAILED", code)
		}
	})
	t.Run("RevokeAllRacingLoginsOnAllInstances", func(t *testing.T) {
		t.Parallel()
		revokeAllRacing(t, env.instances(t, 3))
	})
	t.Run("RevokeByCLIStraightOnTheDatabase", func(t *testing.T) {
		t.Parallel()
		in := env.instances(t, 2)
		a, b := in[0], in[1]
		const user = "direct@example.com"
		a.mustLink(user)
		pass, id := a.appPassword(user)
		c := idleSession(t, b, user, pass)
		out := a.cliDirect("password", "revoke", user, id)
		took := waitEnded(t, c, time.Now(), "revoke by the CLI on the database")
		t.Logf("IDLE session on B ended %v after the CLI's revoke on the database (%s)", took.Round(time.Millisecond), strings.TrimSpace(out))
	})
	t.Run("UnlinkOnAEndsAndRefusesOnB", func(t *testing.T) {
		t.Parallel()
		in := env.instances(t, 2)
		a, b := in[0], in[1]
		const user = "unlink@example.com"
		pass := a.user(user)
		c := idleSession(t, b, user, pass) // B has an access token cached now
		a.mustCLI("account", "unlink", user)
		waitEnded(t, c, time.Now(), "unlink on A")
		if code := b.imapLoginCode(user, pass); code == "" {
			t.Fatal("login on B after the unlink on A succeeded with B's cached access token")
		}
	})
	t.Run("DatabaseHangs", func(t *testing.T) {
		t.Parallel()
		databaseHangs(t, env)
	})
	t.Run("StoreCopyBothWays", func(t *testing.T) {
		t.Parallel()
		storeCopyBothWays(t, env)
	})
}

// revokeAllRacing: clients log in again and again, spread over every
// instance, while revoke-all runs on the first. Every session that got OK
// anywhere ends, and later logins fail everywhere. Each session's end is
// timed as it happens: the clients' last, refused logins wait out the
// throttle's failure delay, which must not count.
func revokeAllRacing(t *testing.T, in []*e2e) {
	const user = "racing@example.com"
	pass := in[0].user(user)
	endings, revoked := racingLogins(t, in, user, pass, func() {
		in[0].mustCLI("password", "revoke-all", user)
	})
	slowest := waitEndings(t, endings, revoked, endBound)
	t.Logf("%d logins on %d instances; every session closed within %v of revoke-all returning",
		len(endings), len(in), slowest.Round(time.Millisecond))
	for i, e := range in {
		if code := e.imapLoginCode(user, pass); code == "" {
			t.Fatalf("login on instance %d after revoke-all succeeded", i)
		}
	}
}

// storeCopyBothWays: a bbolt store with a linked mailbox and a password is
// copied into PostgreSQL (refused while the daemon holds the file), a
// daemon on the database logs the password in, a second copy into the
// database is refused, and the database copied back into a new bbolt file
// logs in too. The bbolt daemon's config gives the key file.
func storeCopyBothWays(t *testing.T, env *pgEnv) {
	const user = "copy@example.com"
	src := newE2EWith(t, env.idp, env.stack, e2eOpts{})
	pass := src.user(user)
	boltFile := filepath.Join(src.dir, "state", "mailgate.db")
	pg := env.database(t)
	if _, stderr, err := src.cli("store", "copy", "-from", boltFile, "-to", pg.dsn); err == nil ||
		!strings.Contains(stderr, "in use") {
		t.Fatalf("copy from a file the daemon holds: %v\n%s", err, stderr)
	}
	src.d.stop(t)
	out := src.mustCLI("store", "copy", "-from", boltFile, "-to", pg.dsn)
	t.Logf("bbolt -> postgres: %s", strings.TrimSpace(out))

	copyFile(t, filepath.Join(src.dir, "state", "mailgate.key"), pg.keyFile) // sealed under the bbolt store's key
	dst := newE2EWith(t, env.idp, env.stack, e2eOpts{pg: pg})
	if code := dst.imapLoginCode(user, pass); code != "" {
		t.Fatalf("login on the database after the copy: %s", code)
	}
	if _, stderr, err := src.cli("store", "copy", "-from", boltFile, "-to", pg.dsn); err == nil ||
		!strings.Contains(stderr, "already holds mailgate data") {
		t.Fatalf("copy into a database with data: %v\n%s", err, stderr)
	}

	back := filepath.Join(t.TempDir(), "back.db")
	out = src.mustCLI("store", "copy", "-from", pg.dsn, "-to", back)
	t.Logf("postgres -> bbolt: %s", strings.TrimSpace(out))
	os.Remove(boltFile + ".pid")
	if err := os.Rename(back, boltFile); err != nil {
		t.Fatal(err)
	}
	src.start()
	if code := src.imapLoginCode(user, pass); code != "" {
		t.Fatalf("login on the bbolt file copied back: %s", code)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestE2EConfigCheckDSNFileMode: "config check" refuses a DSN file that
// group and others can read, naming the file, and never prints the DSN.
func TestE2EConfigCheckDSNFileMode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dsnFile := filepath.Join(dir, "pg.dsn")
	if err := os.WriteFile(dsnFile, []byte("postgres://mailgate:s3cret@db/mailgate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dsnFile, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "mailgate.yaml")
	yaml := fmt.Sprintf("store:\n  driver: postgres\n  dsn_file: %s\n  key_file: %s\n"+
		"imap:\n  listen: [{ address: \"127.0.0.1:1143\", tls: none }]\nsmtp:\n  listen: []\n"+
		"oauth:\n  provider: microsoft\n  tenant: contoso.onmicrosoft.com\n  client_id: app-id\n",
		dsnFile, filepath.Join(dir, "mailgate.key"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &e2e{t: t, cfg: cfg}
	_, stderr, err := e.cli("config", "check", "-config", cfg)
	if err == nil || !strings.Contains(stderr, dsnFile+" is open to group and others (mode 0644)") {
		t.Fatalf("config check with a 0644 dsn file: %v\n%s", err, stderr)
	}
	if strings.Contains(stderr, "s3cret") {
		t.Fatalf("config check printed the DSN: %s", stderr)
	}
	if err := os.Chmod(dsnFile, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := e.cli("config", "check", "-config", cfg); err != nil || !strings.Contains(out, ": ok") {
		t.Fatalf("config check with a 0600 dsn file: %v\n%s%s", err, out, stderr)
	}
}
