// Package pgtest starts a throwaway PostgreSQL cluster for tests: initdb into
// a temporary directory, a server on a random port of 127.0.0.1 with its
// socket in that directory, removed when the test ends. The cluster can be
// stopped and started again (same port, same data) to test outages.
//
// CI runs as root, and PostgreSQL refuses to run as root, so the cluster is
// run as the unprivileged "postgres" user that Debian's package creates (or
// "nobody"). The tests skip only when the binaries are absent and the CI
// variable is unset; in CI a missing PostgreSQL fails the test.
package pgtest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"mailgate/internal/testenv"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
)

// Superuser is the database superuser initdb creates; tests connect as it,
// over TCP with a password (SCRAM, as managed PostgreSQL asks), or over
// the socket without one.
const Superuser = "mailgate"

// TB is the part of testing.TB that Start uses, declared here so that the
// benchmark binary can use New without importing testing.
type TB interface {
	Helper()
	Cleanup(func())
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Options configure New.
type Options struct {
	// Durable keeps PostgreSQL's fsync and synchronous commit on, as in
	// production (the benchmark's revocations write); tests turn them off
	// for speed.
	Durable bool
}

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	bin     string // directory of initdb, pg_ctl
	dir     string // data directory (and socket directory: dir/sock)
	durable bool
	port    int
	pass    string              // Superuser's password
	cred    *syscall.Credential // nil when not root
	mu      sync.Mutex
	count   int // databases created by NewDatabase
}

// Start creates and starts a cluster and returns the DSN of its "postgres"
// database. The cluster is stopped and removed when tb ends.
func Start(tb TB) (dsn string, ctl *Cluster) {
	tb.Helper()
	if _, err := findBin(); err != nil {
		testenv.Missing(tb, "pgtest: %v (Debian package postgresql)", err)
	}
	c, err := New(nil)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(c.Close)
	return c.DSN("postgres"), c
}

// New creates a cluster in a temporary directory and starts it; Close
// stops and removes it. A nil opts is the tests' fast cluster.
func New(opts *Options) (*Cluster, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, durable: opts != nil && opts.Durable}
	if err := c.create(); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.Start(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close stops the server at once and removes its directory.
func (c *Cluster) Close() {
	if c.dir == "" {
		return
	}
	c.stop("immediate")
	os.RemoveAll(c.dir)
}

// findBin looks for pg_ctl in PATH, then under /usr/lib/postgresql/*/bin
// (Debian does not put initdb and pg_ctl in PATH), newest version first.
func findBin() (string, error) {
	// Symlinks are followed: psql lives next to the real pg_ctl, not
	// necessarily next to a link to it.
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if _, err := os.Stat(filepath.Join(filepath.Dir(real), "initdb")); err == nil {
				return filepath.Dir(real), nil
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("initdb and pg_ctl not found in PATH or /usr/lib/postgresql/*/bin")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// create runs initdb into a fresh temp dir owned by the unprivileged user.
func (c *Cluster) create() error {
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return err
	}
	c.dir = dir
	if err := c.dropRoot(); err != nil {
		return err
	}
	if err := os.Mkdir(c.sockDir(), 0o700); err != nil {
		return err
	}
	if err := c.chown(dir, c.sockDir()); err != nil {
		return err
	}
	c.port, err = freePort()
	if err != nil {
		return err
	}
	c.pass = rand.Text()
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.pass+"\n"), 0o600); err != nil {
		return err
	}
	if err := c.chown(pwfile); err != nil {
		return err
	}
	return c.run("initdb", "-D", c.dataDir(), "-U", Superuser, "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
}

// dropRoot picks the user the server runs as when the test runs as root.
func (c *Cluster) dropRoot() error {
	if os.Geteuid() != 0 {
		return nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// create chowns the temp dir (0700, under world-searchable /tmp)
		// to this user.
		return nil
	}
	return errors.New("running as root and neither user postgres nor nobody exists")
}

func (c *Cluster) chown(paths ...string) error {
	if c.cred == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *Cluster) sockDir() string { return filepath.Join(c.dir, "sock") }

// freePort asks the kernel for a free port on 127.0.0.1. Another process
// may take it before the server binds it; Start then fails loudly.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// run runs a PostgreSQL binary as the cluster's user.
func (c *Cluster) run(name string, args ...string) error {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, out.Bytes())
	}
	return nil
}

// Start starts the server (again, after Stop) on the same port and data,
// and waits until it accepts connections.
func (c *Cluster) Start() error {
	opts := fmt.Sprintf("-p %d -k %s -h 127.0.0.1 -c max_connections=200", c.port, c.sockDir())
	if !c.durable {
		opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	}
	return c.run("pg_ctl", "start", "-w", "-t", "60", "-D", c.dataDir(),
		"-l", filepath.Join(c.dir, "server.log"), "-o", opts)
}

// Stop stops the server quickly (connections are cut, as in a crash of the
// database host); Start brings it back.
func (c *Cluster) Stop() error { return c.stop("fast") }

func (c *Cluster) stop(mode string) error {
	if _, err := os.Stat(filepath.Join(c.dataDir(), "postmaster.pid")); err != nil {
		return nil // not running
	}
	return c.run("pg_ctl", "stop", "-w", "-m", mode, "-D", c.dataDir())
}

// Port is the server's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// DSN returns a URL for database db over TCP on 127.0.0.1, with the
// password.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, c.pass, c.port, db)
}

// DSNWithoutPassword is DSN without the password, for tests of
// PGPASSWORD and .pgpass.
func (c *Cluster) DSNWithoutPassword(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, c.port, db)
}

// Password is Superuser's password.
func (c *Cluster) Password() string { return c.pass }

// NewDatabase creates an empty database and returns its DSN, so that tests
// sharing one cluster per package each get their own data.
func (c *Cluster) NewDatabase(tb TB) string {
	tb.Helper()
	c.mu.Lock()
	c.count++
	name := fmt.Sprintf("t%d", c.count)
	c.mu.Unlock()
	if err := c.run("psql", "-h", c.sockDir(), "-p", strconv.Itoa(c.port), "-U", Superuser,
		"-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return c.DSN(name)
}
