package main

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"mailgate/internal/pgtest"
)

// The PostgreSQL rows (issue 15): the login rate with the store on
// PostgreSQL against bbolt, on the same machine and upstream, and how long
// a session on one instance lives after its password was revoked through
// another instance on the same database.

// pgDaemon is a bench daemon on PostgreSQL, with the environment its CLI
// runs in.
type pgDaemon struct {
	*daemon
	env []string
}

// pgConfig sizes the PostgreSQL rows.
type pgConfig struct {
	dsn     string // an existing, empty database; "" starts a throwaway cluster
	revokes int    // revocations per row; 0 is pgRevokes
}

// pgRevokes is the sample: p99 over 100 revocations.
const pgRevokes = 100

// pgLevels are the concurrencies compared; issue 15 names them.
var pgLevels = []int{20, 50}

func (p *pgConfig) flags() {
	flag.StringVar(&p.dsn, "pg", "", "PostgreSQL rows: use this empty database (libpq URL) instead of a throwaway cluster")
	flag.IntVar(&p.revokes, "pg-revokes", cmp.Or(p.revokes, pgRevokes), "PostgreSQL rows: revocations timed per row")
}

// rowsPG measures the PostgreSQL rows. Without -pg and without the
// PostgreSQL binaries they are skipped, and the report says so.
func rowsPG(e *env, rep *report) error {
	dsn, stop, err := e.pgDatabase()
	if err != nil {
		rep.Skipped = append(rep.Skipped, "PostgreSQL rows: "+err.Error())
		return nil
	}
	defer stop()
	bolt, err := e.newDaemon(e.stack.IMAPS)
	if err != nil {
		return err
	}
	defer bolt.stop()
	a, err := e.newPGDaemon(dsn, nil)
	if err != nil {
		return err
	}
	defer a.stop()
	pgRate(e, rep, bolt, a)
	bolt.stop() // its CPU is not the revocations'
	b, err := e.newPGDaemon(dsn, a)
	if err != nil {
		return err
	}
	defer b.stop()
	return pgRevoke(e, rep, a, b)
}

// pgDatabase returns -pg, or starts a throwaway cluster.
func (e *env) pgDatabase() (dsn string, stop func(), err error) {
	if e.cfg.pg.dsn != "" {
		return e.cfg.pg.dsn, func() {}, nil
	}
	c, err := pgtest.New(&pgtest.Options{Durable: true})
	if err != nil {
		return "", nil, fmt.Errorf("%w (install postgresql, or pass -pg DSN)", err)
	}
	logf("postgres: throwaway cluster on 127.0.0.1:%d", c.Port())
	return c.DSN("postgres"), c.Close, nil
}

// pgRate runs both daemons at each level, bbolt first, twice over so that
// a burst of load on the shared machine spreads over both.
func pgRate(e *env, rep *report, bolt *daemon, pg *pgDaemon) {
	logf("postgres login rate: levels %v, %v each, twice", pgLevels, e.cfg.rateFor)
	for _, conc := range pgLevels {
		var rb, rp []rateResult
		for range 2 {
			rb = append(rb, loginRate(bolt.imap, e.clientTL, bolt.login, conc, e.cfg.rateFor, bolt.cpu))
			rp = append(rp, loginRate(pg.imap, e.clientTL, pg.login, conc, e.cfg.rateFor, pg.cpu))
		}
		b, p := meanRate(rb), meanRate(rp)
		rep.Rates["bbolt"] = append(rep.Rates["bbolt"], b)
		rep.Rates["postgres"] = append(rep.Rates["postgres"], p)
		rep.add(row{Name: fmt.Sprintf("PostgreSQL store: logins/s at %d concurrent (direct = bbolt)", conc),
			Unit: "1/s", Direct: b.PerSecond, Mailgate: p.PerSecond, HigherBetter: true,
			Note: fmt.Sprintf("goal >= 0.9x; p99 %.0f ms bbolt, %.0f ms postgres; %d / %d errors; mailgate CPU-ms per login %.2f bbolt, %.2f postgres",
				b.P99ms, p.P99ms, b.Errors, p.Errors, b.ProxyCPUms, p.ProxyCPUms)})
	}
}

func meanRate(rs []rateResult) rateResult {
	m := rateResult{Concurrency: rs[0].Concurrency}
	for _, r := range rs {
		m.PerSecond += r.PerSecond / float64(len(rs))
		m.P99ms = max(m.P99ms, r.P99ms)
		m.Errors += r.Errors
		m.MachineCPUms += r.MachineCPUms / float64(len(rs))
		m.ProxyCPUms += r.ProxyCPUms / float64(len(rs))
	}
	return m
}

// newPGDaemon starts a daemon on the database dsn, with the key file all
// of the bench's PostgreSQL daemons share. The first (first == nil) links
// benchUser and issues its app password with the CLI straight against the
// database, as an admin would before any daemon runs; the others log in
// with the first one's password, from the same database.
func (e *env) newPGDaemon(dsn string, first *pgDaemon) (*pgDaemon, error) {
	e.daemons++
	dir := filepath.Join(e.dir, fmt.Sprintf("mailgate-%d", e.daemons))
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		return nil, err
	}
	dsnFile := filepath.Join(e.dir, "pg.dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		return nil, err
	}
	cfg, err := pgConfigText(fmt.Sprintf(configTemplate, dir, e.certFile, e.keyFile, e.stack.IMAPS,
		e.stack.SubmissionS, e.stack.CAFile, benchClientID, e.idp.TokenURL(), e.idp.DeviceAuthURL(),
		e.cfg.sessionLimit(), e.stack.POP3S()), dir, dsnFile, filepath.Join(e.dir, "pg.key"))
	if err != nil {
		return nil, err
	}
	cfgFile := filepath.Join(dir, "mailgate.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	env := e.daemonEnv(cfgFile)
	var pass string
	if first == nil {
		if err := e.link(env); err != nil {
			return nil, err
		}
		if pass, err = e.createPassword(env); err != nil {
			return nil, err
		}
	} else {
		pass = first.pass
	}
	d, err := startDaemon(e.bin, cfgFile, env)
	if err != nil {
		return nil, err
	}
	d.dir, d.pass = dir, pass
	return &pgDaemon{daemon: d, env: env}, nil
}

// pgConfigText swaps the bbolt store of a bench config for PostgreSQL, and
// gives the daemon an admin socket of its own (with postgres the default
// is one path for the machine).
func pgConfigText(cfg, dir, dsnFile, keyFile string) (string, error) {
	bolt := fmt.Sprintf("store:\n  path: %s/state/mailgate.db\n", dir)
	if !strings.Contains(cfg, bolt) {
		return "", fmt.Errorf("bench config has no %q to replace", bolt)
	}
	pg := fmt.Sprintf("store:\n  driver: postgres\n  dsn_file: %s\n  key_file: %s\nadmin:\n  socket: %s/state/admin.sock\n",
		dsnFile, keyFile, dir)
	return strings.Replace(cfg, bolt, pg, 1), nil
}
