package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mailgate/internal/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// runTool runs a client program and fails the test on a non-zero exit.
func runTool(t *testing.T, name string, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// clientCase is one way a client reaches mailgate.
type clientCase struct {
	name     string
	implicit bool   // implicit TLS, else STARTTLS
	mech     string // LOGIN or PLAIN
}

var clientCases = []clientCase{
	{"implicit LOGIN", true, "LOGIN"}, {"implicit PLAIN", true, "PLAIN"},
	{"starttls LOGIN", false, "LOGIN"}, {"starttls PLAIN", false, "PLAIN"},
}

// writeMessages writes one message per case to a file and returns the
// files and the messages.
func writeMessages(t *testing.T, tag, to string) (files []string, msgs []string) {
	dir := t.TempDir()
	for i := range clientCases {
		msg := e2eMessage(fmt.Sprintf("%s-%d", tag, i), to)
		f := filepath.Join(dir, fmt.Sprintf("msg%d.eml", i))
		if err := os.WriteFile(f, []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
		files, msgs = append(files, f), append(msgs, msg)
	}
	return files, msgs
}

// checkOneOf checks that got is one of msgs as delivered.
func checkOneOf(t *testing.T, got []byte, msgs []string) {
	t.Helper()
	for _, m := range msgs {
		if bytes.HasSuffix(got, []byte(m)) {
			checkDelivered(t, got, m)
			return
		}
	}
	t.Fatalf("fetched message is none of those sent:\n%q", got)
}

// TestE2ECurl drives mailgate with curl: SMTP and IMAP, implicit TLS and
// STARTTLS, AUTH LOGIN / LOGIN command and AUTH PLAIN; curl -v shows which
// command it sent.
func TestE2ECurl(t *testing.T) {
	t.Parallel()
	needCommand(t, "curl", "curl")
	curl := "curl"
	e := newE2E(t, e2eOpts{})
	const user = "curl@example.com"
	pass := e.user(user)
	base := []string{"-sS", "-v", "--max-time", "30", "--ssl-reqd", "--cacert", e.ca, "--user", user + ":" + pass}
	files, msgs := writeMessages(t, "curl", user)
	for i, tc := range clientCases {
		url := "smtp://" + localhost(e.smtp)
		if tc.implicit {
			url = "smtps://" + localhost(e.smtps)
		}
		args := append(base, url, "--login-options", "AUTH="+tc.mech,
			"--mail-from", user, "--mail-rcpt", user, "--upload-file", files[i])
		_, trace := runTool(t, curl, args...)
		if !strings.Contains(trace, "> AUTH "+tc.mech) {
			t.Errorf("smtp %s: curl did not send AUTH %s:\n%s", tc.name, tc.mech, trace)
		}
	}
	waitMaildir(t, e.stack.Maildir(user), len(clientCases))
	loginOpt, loginWant := curlIMAPLogin(t, curl)
	for _, tc := range clientCases {
		url, opt, want := "imap://"+localhost(e.imap), loginOpt, loginWant
		if tc.implicit {
			url = "imaps://" + localhost(e.imaps)
		}
		if tc.mech == "PLAIN" {
			opt, want = "AUTH=PLAIN", " AUTHENTICATE PLAIN"
		}
		out, trace := runTool(t, curl, append(base, url+"/INBOX/;MAILINDEX=1", "--login-options", opt)...)
		if !strings.Contains(trace, want) {
			t.Errorf("imap %s: curl did not send%s:\n%s", tc.name, want, trace)
		}
		checkOneOf(t, []byte(out), msgs)
	}
}

// curlIMAPLogin returns the login option that makes curl send the IMAP
// LOGIN command and what its trace then shows. "AUTH=+LOGIN" exists since
// curl 8.2.0; older curl (Debian 12 has 7.88) always prefers the advertised
// AUTH=PLAIN, so there the case runs with curl's own choice and LOGIN is
// covered by imaplib and go-imap.
func curlIMAPLogin(t *testing.T, curl string) (opt, want string) {
	out, _ := runTool(t, curl, "--version")
	var major, minor int
	fmt.Sscanf(out, "curl %d.%d", &major, &minor)
	if major > 8 || major == 8 && minor >= 2 {
		return "AUTH=+LOGIN", " LOGIN "
	}
	t.Logf("curl %d.%d has no AUTH=+LOGIN (8.2.0): its IMAP login cases use AUTH=*", major, minor)
	return "AUTH=*", " AUTHENTICATE PLAIN"
}

// TestE2EPython drives mailgate with Python's smtplib and imaplib
// (testdata/e2e/*.py) over both TLS modes and both mechanisms.
func TestE2EPython(t *testing.T) {
	t.Parallel()
	needCommand(t, "python3", "python3")
	py := "python3"
	e := newE2E(t, e2eOpts{})
	const user = "python@example.com"
	pass := e.user(user)
	files, msgs := writeMessages(t, "python", user)
	mode := func(tc clientCase) string {
		if tc.implicit {
			return "implicit"
		}
		return "starttls"
	}
	for i, tc := range clientCases {
		m, addr := mode(tc), e.smtp
		if tc.implicit {
			addr = e.smtps
		}
		host, port := splitLocal(addr)
		runTool(t, py, "../../testdata/e2e/smtp_client.py", m, strings.ToLower(tc.mech), host, port, e.ca,
			user, pass, user, user, files[i])
	}
	waitMaildir(t, e.stack.Maildir(user), len(clientCases))
	for _, tc := range clientCases {
		m, addr := mode(tc), e.imap
		if tc.implicit {
			addr = e.imaps
		}
		host, port := splitLocal(addr)
		out, _ := runTool(t, py, "../../testdata/e2e/imap_client.py", m, strings.ToLower(tc.mech), host, port, e.ca, user, pass)
		var r struct {
			Exists int
			Body   string
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("imap_client.py: %v: %q", err, out)
		}
		body, err := base64.StdEncoding.DecodeString(r.Body)
		if err != nil || r.Exists != len(clientCases) {
			t.Fatalf("imap %s: %d messages, body %v", tc.name, r.Exists, err)
		}
		checkOneOf(t, body, msgs)
	}
}

// TestE2ESwaks submits with swaks, the SMTP test tool admins reach for,
// verifying mailgate's certificate.
func TestE2ESwaks(t *testing.T) {
	t.Parallel()
	needCommand(t, "swaks", "swaks")
	swaks := "swaks"
	if out, _ := exec.Command(swaks, "--support").CombinedOutput(); !bytes.Contains(out, []byte("=== TLS supported")) {
		testenv.Missing(t, "swaks has no TLS (Debian package libnet-ssleay-perl)")
	}
	e := newE2E(t, e2eOpts{})
	const user = "swaks@example.com"
	pass := e.user(user)
	files, _ := writeMessages(t, "swaks", user)
	for i, tc := range clientCases {
		addr, tlsFlag := e.smtp, "--tls"
		if tc.implicit {
			addr, tlsFlag = e.smtps, "--tls-on-connect"
		}
		host, port := splitLocal(addr)
		out, _ := runTool(t, swaks, "--server", host, "--port", port, tlsFlag, "--tls-verify", "--tls-ca-path", e.ca,
			"--auth", tc.mech, "--auth-user", user, "--auth-password", pass,
			"--from", user, "--to", user, "--data", "@"+files[i], "--timeout", "30")
		if !strings.Contains(out, "<~  235 ") || !strings.Contains(out, "~> AUTH "+tc.mech) {
			t.Errorf("swaks %s:\n%s", tc.name, out)
		}
	}
	waitMaildir(t, e.stack.Maildir(user), len(clientCases))
}

// TestE2EGoClients logs in with go-imap v2's client (LOGIN and
// AUTHENTICATE PLAIN) and submits with go-smtp's client (AUTH PLAIN and
// LOGIN), over both TLS modes.
func TestE2EGoClients(t *testing.T) {
	t.Parallel()
	e := newE2E(t, e2eOpts{})
	const user = "gopher@example.com"
	pass := e.user(user)
	_, msgs := writeMessages(t, "go", user)
	for i, tc := range clientCases {
		var c *smtp.Client
		var err error
		if tc.implicit {
			c, err = smtp.DialTLS(e.smtps, e.tls)
		} else {
			c, err = smtp.DialStartTLS(e.smtp, e.tls)
		}
		if err != nil {
			t.Fatal(err)
		}
		auth := sasl.NewPlainClient("", user, pass)
		if tc.mech == "LOGIN" {
			auth = sasl.NewLoginClient(user, pass)
		}
		if err := c.Auth(auth); err != nil {
			t.Fatalf("smtp %s: AUTH: %v", tc.name, err)
		}
		if err := c.SendMail(user, []string{user}, strings.NewReader(msgs[i])); err != nil {
			t.Fatalf("smtp %s: send: %v", tc.name, err)
		}
		c.Quit()
	}
	waitMaildir(t, e.stack.Maildir(user), len(clientCases))
	for _, tc := range clientCases {
		var c *imapclient.Client
		if tc.implicit {
			c = e.dialIMAP(e.imaps, false, nil)
		} else {
			c = e.dialIMAP(e.imap, true, nil)
		}
		var err error
		if tc.mech == "LOGIN" {
			err = c.Login(user, pass).Wait()
		} else {
			err = c.Authenticate(sasl.NewPlainClient("", user, pass))
		}
		if err != nil {
			t.Fatalf("imap %s: %v", tc.name, err)
		}
		if sel, err := c.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != uint32(len(clientCases)) {
			t.Fatalf("imap %s: SELECT %+v, %v", tc.name, sel, err)
		}
		checkOneOf(t, fetchBody(t, c, 1), msgs)
		c.Logout().Wait()
	}
}

// splitLocal returns "localhost" and the port of a listener address.
func splitLocal(addr string) (host, port string) {
	host, port, _ = strings.Cut(localhost(addr), ":")
	return host, port
}
