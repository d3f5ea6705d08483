package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"

	"mailgate/proxy/admin"
)

// cli runs the mailgate CLI as an admin would, with $MAILGATE_CONFIG set.
func (e *e2e) cli(args ...string) (stdout, stderr string, err error) {
	e.t.Helper()
	cmd := exec.Command(mailgateBinary(e.t), args...)
	cmd.Env = e.env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

func (e *e2e) mustCLI(args ...string) string {
	e.t.Helper()
	out, stderr, err := e.cli(args...)
	if err != nil {
		e.t.Fatalf("mailgate %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// env is the environment the CLI and the daemon run in: $MAILGATE_CONFIG
// names the config, and a race-enabled binary does not sleep a second at
// exit (the race runtime's default atexit_sleep_ms).
func (e *e2e) env() []string {
	return append(os.Environ(), "MAILGATE_CONFIG="+e.cfg,
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

var passwordSeq atomic.Int64

// appPassword issues an app password with "mailgate password create -json"
// and returns the password and its id.
func (e *e2e) appPassword(mailbox string) (password, id string) {
	e.t.Helper()
	name := fmt.Sprintf("client-%d", passwordSeq.Add(1))
	out := e.mustCLI("password", "create", "-json", "-name", name, mailbox)
	var p struct{ Password, ID string }
	if err := json.Unmarshal([]byte(out), &p); err != nil || p.Password == "" || p.ID == "" {
		e.t.Fatalf("password create -json: %v: %q", err, out)
	}
	return p.Password, p.ID
}

// link runs "mailgate account link -json mailbox", reads the device code
// from its first line, signs in at the provider as approveAs and returns
// the command's outcome.
func (e *e2e) link(mailbox, approveAs string) (last, stderr string, err error) {
	e.t.Helper()
	cmd := exec.Command(mailgateBinary(e.t), "account", "link", "-json", mailbox)
	cmd.Env = e.env()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	sc := bufio.NewScanner(pipe)
	if !sc.Scan() {
		cmd.Wait()
		e.t.Fatalf("account link printed nothing: %s", errb.String())
	}
	var ev struct {
		VerificationURI string `json:"verification_uri"`
		UserCode        string `json:"user_code"`
	}
	if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.UserCode == "" || ev.VerificationURI == "" {
		e.t.Fatalf("first line of account link -json: %v: %q", err, sc.Text())
	}
	if err := e.idp.ApproveDevice(ev.UserCode, approveAs); err != nil {
		e.t.Fatal(err)
	}
	for sc.Scan() {
		last = sc.Text()
	}
	err = cmd.Wait()
	return last, errb.String(), err
}

// mustLink links mailbox, signed in as itself.
func (e *e2e) mustLink(mailbox string) {
	e.t.Helper()
	last, stderr, err := e.link(mailbox, mailbox)
	if err != nil || !strings.Contains(last, `"linked":true`) {
		e.t.Fatalf("account link %s: %v: %q %s", mailbox, err, last, stderr)
	}
}

// account returns the "account list -json" row of mailbox.
func (e *e2e) account(mailbox string) admin.Account {
	e.t.Helper()
	var as []admin.Account
	out := e.mustCLI("account", "list", "-json")
	if err := json.Unmarshal([]byte(out), &as); err != nil {
		e.t.Fatalf("account list -json: %v: %q", err, out)
	}
	for _, a := range as {
		if a.Mailbox == mailbox {
			return a
		}
	}
	e.t.Fatalf("no %s in account list: %s", mailbox, out)
	return admin.Account{}
}

// user links a fresh mailbox and issues it an app password.
func (e *e2e) user(mailbox string) (password string) {
	e.t.Helper()
	e.mustLink(mailbox)
	password, _ = e.appPassword(mailbox)
	return password
}
