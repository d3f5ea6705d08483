package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailgate/internal/fakeidp"
	"mailgate/internal/mailstack"
	"mailgate/internal/pgtest"
	"mailgate/internal/testenv"
)

// e2ePG is the shared store of daemons on one PostgreSQL database: the
// DSN file and the key file they all name, as on real instances.
type e2ePG struct {
	dsn     string // the database's URL
	dsnFile string
	keyFile string
}

func (p *e2ePG) storeConfig() string {
	return fmt.Sprintf("store:\n  driver: postgres\n  dsn_file: %s\n  key_file: %s", p.dsnFile, p.keyFile)
}

// pgEnv is one PostgreSQL cluster, identity provider and mail stack, shared
// by the subtests of one top-level test; each subtest gets a database of
// its own (pgEnv.database).
type pgEnv struct {
	ctl   *pgtest.Cluster
	idp   *fakeidp.Server
	stack *mailstack.Stack
}

// newPGEnv starts the cluster, the provider and the stack; it skips, naming
// what to install, when Dovecot or PostgreSQL is missing outside CI.
func newPGEnv(t *testing.T) *pgEnv {
	t.Helper()
	if err := mailstack.Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	mailgateBinary(t)
	_, ctl := pgtest.Start(t)
	idp, err := fakeidp.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	return &pgEnv{ctl: ctl, idp: idp, stack: mailstack.StartForTest(t, idp.IntrospectURL())}
}

// database creates a fresh database with its DSN file (0600) and a key
// file written here, before any daemon starts, so that instances started
// together do not race to create it.
func (p *pgEnv) database(t *testing.T) *e2ePG {
	t.Helper()
	dir := t.TempDir()
	pg := &e2ePG{dsn: p.ctl.NewDatabase(t), dsnFile: filepath.Join(dir, "pg.dsn"), keyFile: filepath.Join(dir, "mailgate.key")}
	if err := os.WriteFile(pg.dsnFile, []byte(pg.dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pg.keyFile, randomKey(t), 0o600); err != nil {
		t.Fatal(err)
	}
	return pg
}

// randomKey returns a key file's content: 32 random bytes.
func randomKey(t *testing.T) []byte {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

// instances starts n daemons on one fresh database.
func (p *pgEnv) instances(t *testing.T, n int) []*e2e {
	t.Helper()
	return p.instancesOn(t, p.database(t), n)
}

// instancesOn starts n daemons on pg.
func (p *pgEnv) instancesOn(t *testing.T, pg *e2ePG, n int) []*e2e {
	t.Helper()
	out := make([]*e2e, n)
	for i := range out {
		out[i] = newE2EWith(t, p.idp, p.stack, e2eOpts{pg: pg})
	}
	return out
}

// cliDirect runs the CLI with e's config but an admin socket that no
// daemon serves, so that it works straight on the database.
func (e *e2e) cliDirect(args ...string) string {
	e.t.Helper()
	data, err := os.ReadFile(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	sock := filepath.Join(e.dir, "state", "admin.sock")
	direct := filepath.Join(e.dir, "direct.yaml")
	cfg := strings.Replace(string(data), sock, filepath.Join(e.dir, "no-daemon.sock"), 1)
	if err := os.WriteFile(direct, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return e.mustCLI(append(append([]string{}, args...), "-config", direct)...)
}
