package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mailgate/internal/fakeidp"
	"mailgate/internal/mailstack"
	"mailgate/internal/selfsigned"
	"mailgate/internal/testenv"
)

// e2eOpts varies the daemon's configuration; zero values are the defaults.
type e2eOpts struct {
	idp       *fakeidp.Options // identity provider options
	smtpStack *mailstack.Stack // SMTP upstream stack; default the IMAP one
	postfix   bool             // SMTP upstream: Postfix+Dovecot SASL, not Dovecot submission
	mechanism string           // xoauth2 (default) or oauthbearer, for both
	noCAFile  bool             // leave out upstream ca_file: the stack's CA is untrusted
	web       *e2eWeb          // the portal (e2e_web_env_test.go); nil: off
	pg        *e2ePG           // the store on PostgreSQL (e2e_pg_env_test.go); nil: bbolt
}

// e2e is one running mailgate daemon between real clients and a real stack.
type e2e struct {
	t     *testing.T
	opts  e2eOpts
	idp   *fakeidp.Server
	stack *mailstack.Stack
	dir   string
	cfg   string      // the config file
	ca    string      // PEM of mailgate's self-signed certificate
	tls   *tls.Config // trusts ca, server name localhost
	// mailgate's listeners: IMAP implicit TLS and STARTTLS, SMTP the same.
	imaps, imap, smtps, smtp string
	d                        *daemonProc
}

// newE2E starts an identity provider, a mail stack and a mailgate daemon.
func newE2E(t *testing.T, opts e2eOpts) *e2e {
	t.Helper()
	if err := mailstack.Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	mailgateBinary(t) // build before anything runs, so a build failure shows first
	idp, err := fakeidp.NewServer(opts.idp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	return newE2EWith(t, idp, mailstack.StartForTest(t, idp.IntrospectURL()), opts)
}

// newE2EWith runs a daemon against an existing provider and stack.
func newE2EWith(t *testing.T, idp *fakeidp.Server, stack *mailstack.Stack, opts e2eOpts) *e2e {
	t.Helper()
	e := &e2e{t: t, opts: opts, idp: idp, stack: stack, dir: t.TempDir()}
	e.ca, e.tls = writeCert(t, e.dir)
	e.writeConfig()
	e.start()
	return e
}

func (e *e2e) writeConfig() {
	smtpStack, smtpAddr := e.stack, e.stack.Submission
	if e.opts.smtpStack != nil {
		smtpStack, smtpAddr = e.opts.smtpStack, e.opts.smtpStack.Submission
	}
	if e.opts.postfix {
		smtpAddr = smtpStack.PostfixSubmission
	}
	mech := e.opts.mechanism
	if mech == "" {
		mech = "xoauth2"
	}
	ca := func(s *mailstack.Stack) string {
		if e.opts.noCAFile {
			return ""
		}
		return s.CAFile
	}
	cfg := fmt.Sprintf(`hostname: localhost
%[9]s
admin:
  socket: %[1]s/state/admin.sock
tls:
  cert_file: %[1]s/cert.pem
  key_file: %[1]s/key.pem
imap:
  listen:
    - { address: "127.0.0.1:0", tls: implicit }
    - { address: "127.0.0.1:0", tls: starttls }
  upstream: { address: %[2]q, tls: implicit, mechanism: %[3]s, ca_file: %[4]q }
smtp:
  listen:
    - { address: "127.0.0.1:0", tls: implicit }
    - { address: "127.0.0.1:0", tls: starttls }
  upstream: { address: %[5]q, tls: starttls, mechanism: %[3]s, ca_file: %[6]q }
oauth:
  provider: generic
  flow: delegated
  client_id: mailgate-e2e
  token_url: %[7]s
  device_authorization_url: %[8]s
accounts:
  domains: [example.com]
log:
  level: debug
  format: json
`, e.dir, e.stack.IMAPS, mech, ca(e.stack), smtpAddr, ca(smtpStack), e.idp.TokenURL(), e.idp.DeviceAuthURL(),
		e.storeConfig())
	cfg = e.webConfig(cfg)
	e.cfg = filepath.Join(e.dir, "mailgate.yaml")
	if err := os.MkdirAll(filepath.Join(e.dir, "state"), 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// storeConfig is the store section: a bbolt file in the instance's state
// directory, or the shared database.
func (e *e2e) storeConfig() string {
	if e.opts.pg != nil {
		return e.opts.pg.storeConfig()
	}
	return fmt.Sprintf("store:\n  path: %s/state/mailgate.db", e.dir)
}

// start runs "mailgate serve" and waits for its four listeners (five with
// the portal).
func (e *e2e) start() {
	e.t.Helper()
	e.d = startDaemon(e.t, e.cfg, e.env())
	n := 4
	if e.opts.web != nil {
		n = 5
	}
	addrs := e.d.listeners(e.t, n)
	e.imaps, e.imap = addrs["imap/implicit"], addrs["imap/starttls"]
	e.smtps, e.smtp = addrs["smtp/implicit"], addrs["smtp/starttls"]
}

// restart stops the daemon and starts a fresh one on the same store: its
// token cache is cold.
func (e *e2e) restart() {
	e.t.Helper()
	e.d.stop(e.t)
	e.start()
}

// daemonProc is a running "mailgate serve" whose stderr (JSON log) is kept.
type daemonProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	log    []string
	listen chan map[string]any
	done   chan struct{}
	once   sync.Once
}

func startDaemon(t *testing.T, cfg string, env []string) *daemonProc {
	t.Helper()
	d := &daemonProc{listen: make(chan map[string]any, 16), done: make(chan struct{})}
	d.cmd = exec.Command(mailgateBinary(t), "serve", "-config", cfg)
	d.cmd.Env = env
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go d.read(bufio.NewScanner(stderr))
	t.Cleanup(func() { d.stop(t) })
	return d
}

// read keeps every log line and reports the "listening" records.
func (d *daemonProc) read(sc *bufio.Scanner) {
	defer close(d.done)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		d.mu.Lock()
		d.log = append(d.log, line)
		d.mu.Unlock()
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "listening" {
			d.listen <- rec
		}
	}
}

// listeners waits for n "listening" records and returns "proto/tls" -> address.
func (d *daemonProc) listeners(t *testing.T, n int) map[string]string {
	t.Helper()
	addrs := map[string]string{}
	timeout := time.After(30 * time.Second)
	for len(addrs) < n {
		select {
		case rec := <-d.listen:
			addrs[fmt.Sprint(rec["proto"], "/", rec["tls"])] = fmt.Sprint(rec["address"])
		case <-d.done:
			t.Fatalf("mailgate serve exited:\n%s", d.logText())
		case <-timeout:
			t.Fatalf("mailgate serve did not listen within 30s:\n%s", d.logText())
		}
	}
	return addrs
}

func (d *daemonProc) logText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.log, "\n")
}

// waitLog waits until a log line contains every one of the strings.
func (d *daemonProc) waitLog(t *testing.T, subs ...string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		d.mu.Lock()
		for _, l := range d.log {
			if containsAll(l, subs) {
				d.mu.Unlock()
				return l
			}
		}
		d.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no daemon log line with %q:\n%s", subs, d.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// stop sends SIGTERM (as systemd does) and waits; a daemon that crashed,
// raced or exited non-zero fails the test.
func (d *daemonProc) stop(t *testing.T) {
	d.once.Do(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(40 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
			t.Errorf("mailgate serve ignored SIGTERM for 40s")
		}
		err := d.cmd.Wait()
		log := d.logText()
		if err != nil || strings.Contains(log, "DATA RACE") || strings.Contains(log, "panic:") {
			t.Errorf("mailgate serve: %v\n%s", err, log)
		}
	})
}

// writeCert writes a certificate for localhost and 127.0.0.1 that is its own
// root (docs/clients.md, "Clients ignore IP addresses in certificates": clients
// check DNS names, not IP addresses) and returns its PEM file and a client
// config that trusts it.
func writeCert(t *testing.T, dir string) (string, *tls.Config) {
	t.Helper()
	c, err := selfsigned.New(&selfsigned.Options{Hosts: []string{"localhost", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	cert := filepath.Join(dir, "cert.pem")
	if err := c.WriteFiles(cert, filepath.Join(dir, "key.pem")); err != nil {
		t.Fatal(err)
	}
	return cert, &tls.Config{RootCAs: c.Pool, ServerName: "localhost"}
}
