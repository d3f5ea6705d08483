package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// configTemplate is the mailgate config of one bench daemon: one
// implicit-TLS listener per protocol (IMAP, SMTP, POP3) on a free loopback port, the stack's
// certificate (clients trust its CA, as they trust Dovecot's), upstreams
// with the stack's CA as ca_file, the fake identity provider as a generic
// OAuth provider, and the limits lifted through their documented keys: the
// bench holds up to 10,000 sessions of one mailbox from one address.
// Everything else is the default a user gets.
const configTemplate = `hostname: localhost
store:
  path: %[1]s/state/mailgate.db
tls:
  cert_file: %[2]s
  key_file: %[3]s
imap:
  listen:
    - { address: "127.0.0.1:0", tls: implicit }
  upstream: { address: %[4]q, tls: implicit, ca_file: %[6]q }
smtp:
  listen:
    - { address: "127.0.0.1:0", tls: implicit }
  upstream: { address: %[5]q, tls: implicit, ca_file: %[6]q }
pop3:
  listen:
    - { address: "127.0.0.1:0", tls: implicit }
  upstream: { address: %[11]q, tls: implicit, ca_file: %[6]q }
oauth:
  provider: generic
  client_id: %[7]s
  token_url: %[8]s
  device_authorization_url: %[9]s
limits:
  connections: %[10]d
  connections_per_ip: %[10]d
  upstream_sessions_per_mailbox: %[10]d
shutdown_grace: 2s
log:
  format: json
`

// newDaemon writes a config for a daemon in front of imapUp, links
// benchUser and issues its app password with the CLI, and starts
// "mailgate serve". Each daemon has a directory and a store of its own.
func (e *env) newDaemon(imapUp string) (*daemon, error) {
	e.daemons++
	dir := filepath.Join(e.dir, fmt.Sprintf("mailgate-%d", e.daemons))
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		return nil, err
	}
	cfgFile := filepath.Join(dir, "mailgate.yaml")
	cfg := fmt.Sprintf(configTemplate, dir, e.certFile, e.keyFile, imapUp, e.stack.SubmissionS, e.stack.CAFile,
		benchClientID, e.idp.TokenURL(), e.idp.DeviceAuthURL(), e.cfg.sessionLimit(), e.stack.POP3S())
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	env := e.daemonEnv(cfgFile)
	if err := e.link(env); err != nil {
		return nil, err
	}
	pass, err := e.createPassword(env)
	if err != nil {
		return nil, err
	}
	d, err := startDaemon(e.bin, cfgFile, env)
	if err != nil {
		return nil, err
	}
	d.dir, d.pass = dir, pass
	return d, nil
}

// daemonEnv is the environment of the CLI and the daemon: the config,
// whole goroutine dumps on SIGQUIT, no exit delay under the race detector,
// and the profile hook's files when asked for.
func (e *env) daemonEnv(cfgFile string) []string {
	env := append(os.Environ(), "MAILGATE_CONFIG="+cfgFile, "GOTRACEBACK=all",
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	if e.cfg.cpuprofile != "" && e.daemons == 1 {
		p, _ := filepath.Abs(e.cfg.cpuprofile)
		env = append(env, "MAILGATE_BENCH_CPUPROFILE="+p)
	}
	if e.cfg.heapprofile != "" {
		p, _ := filepath.Abs(e.cfg.heapprofile)
		env = append(env, "MAILGATE_BENCH_HEAPPROFILE="+p)
	}
	return env
}

// link runs "mailgate account link -json benchUser" and signs in at the
// fake identity provider with the device code it prints, as an admin does.
func (e *env) link(env []string) error {
	cmd := exec.Command(e.bin, "account", "link", "-json", benchUser)
	cmd.Env = env
	var errb bytes.Buffer
	cmd.Stderr = &errb
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(pipe)
	var ev struct {
		UserCode string `json:"user_code"`
	}
	if !sc.Scan() || json.Unmarshal(sc.Bytes(), &ev) != nil || ev.UserCode == "" {
		cmd.Wait()
		return fmt.Errorf("account link: no device code: %q %s", sc.Text(), errb.String())
	}
	if err := e.idp.ApproveDevice(ev.UserCode, benchUser); err != nil {
		return err
	}
	last := ""
	for sc.Scan() {
		last = sc.Text()
	}
	if err := cmd.Wait(); err != nil || !strings.Contains(last, `"linked":true`) {
		return fmt.Errorf("account link: %v: %q %s", err, last, errb.String())
	}
	return nil
}

// createPassword runs "mailgate password create -json" for benchUser.
func (e *env) createPassword(env []string) (string, error) {
	cmd := exec.Command(e.bin, "password", "create", "-json", "-name", "bench", benchUser)
	cmd.Env = env
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	var p struct{ Password string }
	if err != nil || json.Unmarshal(out, &p) != nil || p.Password == "" {
		return "", fmt.Errorf("password create: %v: %q %s", err, out, errb.String())
	}
	return p.Password, nil
}
