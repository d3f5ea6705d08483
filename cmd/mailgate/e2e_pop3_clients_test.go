package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestE2EPOP3Python drives mailgate's POP3 with Python's poplib
// (testdata/e2e/pop3_client.py) over POP3S and STLS: CAPA after TLS offers
// USER and SASL PLAIN, and STAT, LIST, UIDL, TOP and RETR come back byte
// for byte. poplib has no AUTH; TestE2EPOP3 covers AUTH PLAIN.
func TestE2EPOP3Python(t *testing.T) {
	t.Parallel()
	needCommand(t, "python3", "python3")
	p := newPOP3E2E(t, e2eOpts{})
	const user = "pop-python@example.com"
	pass := p.user(user)
	sent := []string{e2eMessage("pop-python-1", user), e2eMessage("pop-python-2", user)}
	for _, m := range sent {
		p.deliver(user, m)
	}
	for _, mode := range []string{"implicit", "starttls"} {
		addr := p.pop3s
		if mode == "starttls" {
			addr = p.pop3
		}
		host, port := splitLocal(addr)
		out, _ := runTool(t, "python3", "../../testdata/e2e/pop3_client.py", mode, host, port, p.ca, user, pass)
		var r struct {
			Capa     []string
			Count    int
			Messages []string
			Top      string
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("pop3_client.py: %v: %q", err, out)
		}
		if !slices.Contains(r.Capa, "USER") || !slices.Contains(r.Capa, "SASL") {
			t.Errorf("%s: CAPA %q, want USER and SASL", mode, r.Capa)
		}
		if r.Count != len(sent) || len(r.Messages) != len(sent) {
			t.Fatalf("%s: %d messages, %d fetched; want %d", mode, r.Count, len(r.Messages), len(sent))
		}
		for i, m := range sent {
			got, err := base64.StdEncoding.DecodeString(r.Messages[i])
			if err != nil {
				t.Fatal(err)
			}
			checkDelivered(t, got, m)
		}
		if top, _ := base64.StdEncoding.DecodeString(r.Top); !bytes.Contains(top, []byte("Subject: e2e pop-python-1")) {
			t.Errorf("%s: TOP 1 0: %q", mode, top)
		}
	}
	if n := p.count(user); n != len(sent) {
		t.Errorf("%d messages upstream after poplib, which deleted none; want %d", n, len(sent))
	}
}

// TestE2EPOP3Fetchmail fetches with fetchmail, as a ticket system's mail
// fetcher would: over POP3S ("ssl") and over STLS (sslproto without ssl
// makes STLS mandatory), the certificate checked against mailgate's
// (sslcertck, sslcertfile), each message handed to an MDA that writes a
// file, and the messages deleted upstream afterwards (fetchmail's default:
// DELE, then QUIT).
func TestE2EPOP3Fetchmail(t *testing.T) {
	t.Parallel()
	needCommand(t, "fetchmail", "fetchmail")
	p := newPOP3E2E(t, e2eOpts{})
	const user = "pop-fetchmail@example.com"
	pass := p.user(user)
	for _, mode := range []string{"implicit", "starttls"} {
		sent := []string{e2eMessage("fetchmail-"+mode+"-1", user), e2eMessage("fetchmail-"+mode+"-2", user)}
		for _, m := range sent {
			p.deliver(user, m)
		}
		out := p.fetchmail(mode, user, pass)
		files, _ := filepath.Glob(filepath.Join(out, "*.eml"))
		if len(files) != len(sent) {
			t.Fatalf("%s: fetchmail delivered %d messages, want %d", mode, len(files), len(sent))
		}
		for _, m := range sent {
			if !deliveredTo(t, files, m) {
				t.Errorf("%s: no delivered file ends with the message %q", mode, m[:60])
			}
		}
		if n := p.count(user); n != 0 {
			t.Errorf("%s: %d messages upstream after fetchmail, want 0 (DELE + QUIT)", mode, n)
		}
	}
}

// fetchmail runs fetchmail once against the listener of mode and returns
// the directory its MDA wrote one file per message into.
func (p *pop3E2E) fetchmail(mode, user, pass string) string {
	p.t.Helper()
	dir := p.t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		p.t.Fatal(err)
	}
	addr, tlsOpt := p.pop3s, "ssl"
	if mode == "starttls" {
		addr, tlsOpt = p.pop3, "sslproto 'tls1.2+'"
	}
	_, port := splitLocal(addr)
	// The MDA runs under sh -c once per message: $$ names each file.
	rc := fmt.Sprintf(`set no syslog
poll localhost protocol pop3 port %s timeout 60
  user %q there with password %q is %q here
  %s sslcertck sslcertfile %q
  fetchall
  mda "cat > %s/msg.$$.eml"
`, port, user, pass, "nobody", tlsOpt, p.ca, out)
	rcFile := filepath.Join(dir, "fetchmailrc")
	if err := os.WriteFile(rcFile, []byte(rc), 0o600); err != nil { // fetchmail refuses a readable rc
		p.t.Fatal(err)
	}
	stdout, stderr := runToolEnv(p.t, []string{"FETCHMAILHOME=" + dir, "HOME=" + dir}, "fetchmail",
		"-f", rcFile, "--nodetach", "--nosyslog", "-v", "--pidfile", filepath.Join(dir, "pid"),
		"--idfile", filepath.Join(dir, "ids"))
	// -v logs the dialogue: the client's lines (POP3> ) include STLS.
	log := stdout + stderr
	if !strings.Contains(log, "reading message") || (mode == "starttls") != strings.Contains(log, "POP3> STLS") {
		p.t.Errorf("fetchmail %s:\n%s", mode, log)
	}
	return out
}

// deliveredTo reports whether one of files holds msg with header fields
// prepended (Dovecot's and fetchmail's Received); fetchmail hands the MDA
// LF line ends.
func deliveredTo(t *testing.T, files []string, msg string) bool {
	t.Helper()
	want := strings.ReplaceAll(msg, "\r\n", "\n")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasSuffix(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte(want)) {
			return true
		}
	}
	return false
}

// runToolEnv is runTool with variables added to the environment.
func runToolEnv(t *testing.T, env []string, name string, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), errb.String()
}
