package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
)

// pgCluster is a throwaway PostgreSQL server for the store rows, made as
// internal/pgtest makes the tests' (which needs a testing.TB): initdb into
// a directory of the bench's, a random port on 127.0.0.1, run as the
// unprivileged "postgres" user because the bench runs as root and
// PostgreSQL refuses to.
type pgCluster struct {
	bin, dir string
	port     int
	cred     *syscall.Credential
}

// pgSuperuser is the role initdb creates; the daemons connect as it.
const pgSuperuser = "mailgate"

// startPG creates and starts a cluster under dir.
func startPG(dir string) (*pgCluster, error) {
	bin, err := pgBin()
	if err != nil {
		return nil, err
	}
	c := &pgCluster{bin: bin, dir: dir}
	if err := c.create(); err != nil {
		return nil, err
	}
	opts := fmt.Sprintf("-p %d -k %s -h 127.0.0.1 -c max_connections=200", c.port, dir)
	err = c.run("pg_ctl", "start", "-w", "-t", "60", "-D", filepath.Join(dir, "data"),
		"-l", filepath.Join(dir, "server.log"), "-o", opts)
	return c, err
}

// dsn is the URL of the cluster's postgres database.
func (c *pgCluster) dsn() string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", pgSuperuser, c.port)
}

func (c *pgCluster) stop() {
	c.run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", filepath.Join(c.dir, "data"))
}

func (c *pgCluster) create() error {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root and no user postgres: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	if c.cred != nil {
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return err
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	c.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	return c.run("initdb", "-D", filepath.Join(c.dir, "data"), "-U", pgSuperuser, "-A", "trust",
		"-E", "UTF8", "--locale=C")
}

func (c *pgCluster) run(name string, args ...string) error {
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

// pgBin finds initdb and pg_ctl: Debian keeps them out of PATH, under
// /usr/lib/postgresql/VERSION/bin; the newest version wins.
func pgBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("initdb not found in PATH or /usr/lib/postgresql/*/bin (install postgresql, or pass -pg DSN)")
}

func pgVersion(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}
