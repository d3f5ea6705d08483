package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"mailgate/internal/fakeidp"
)

// TestAccountLinkAuthCode links a mailbox with the authorization-code flow
// (the one Google needs): the CLI prints the authorization URL, the admin
// signs in and pastes the address the browser was sent to. Both with the
// daemon running (the pasted line travels over the admin socket) and
// without it, and a sign-in as another user links nothing.
func TestAccountLinkAuthCode(t *testing.T) {
	for _, withDaemon := range []bool{false, true} {
		t.Run(fmt.Sprintf("daemon=%v", withDaemon), func(t *testing.T) {
			idp, err := fakeidp.NewServer(nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(idp.Close)
			cfg := writeLinkConfig(t, idp)
			env := append(os.Environ(), "MAILGATE_CONFIG="+cfg,
				"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
			if withDaemon {
				startDaemon(t, cfg, env).listeners(t, 1)
			}
			out, err := linkPasting(t, env, "Carol@Example.com")
			if err != nil || !strings.Contains(out, `"linked":true`) {
				t.Fatalf("link: %v\n%s", err, out)
			}
			list, err := runCLI(t, env, "account", "list", "-json")
			if err != nil || !strings.Contains(list, `"mailbox":"carol@example.com","linked":true`) {
				t.Fatalf("account list after link: %v\n%s", err, list)
			}
			// The ID token names another user; the upstream that could
			// vouch for dave is unreachable here: no link either way.
			idp.SetAuthorizeUser("mallory@example.com")
			out, err = linkPasting(t, env, "dave@example.com")
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("link signed in as another user: %v\n%s", err, out)
			}
			if list, _ := runCLI(t, env, "account", "list", "-json"); strings.Contains(list, "dave@example.com") {
				t.Fatalf("dave linked after mallory signed in:\n%s", list)
			}
		})
	}
}

func writeLinkConfig(t *testing.T, idp *fakeidp.Server) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailgate.yaml")
	yaml := fmt.Sprintf(`store: { path: mailgate.db }
admin: { socket: admin.sock }
log: { format: json }
imap:
  listen: [{ address: "127.0.0.1:0", tls: none }]
  upstream: { address: "127.0.0.1:1", tls: implicit }
smtp:
  listen: []
  upstream: { address: "127.0.0.1:1", tls: starttls }
oauth:
  provider: generic
  client_id: mailgate-test
  token_url: %q
  auth_url: %q
`, idp.TokenURL(), idp.AuthURL())
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// linkPasting runs "account link -json", follows the printed authorization
// URL as a browser would (without following the final redirect) and pastes
// the redirect address back. It returns stdout and stderr together.
func linkPasting(t *testing.T, env []string, mailbox string) (string, error) {
	t.Helper()
	cmd := exec.Command(mailgateBinary(t), "account", "link", "-json", mailbox)
	cmd.Env = env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	first, err := r.ReadString('\n')
	if err != nil {
		cmd.Wait()
		t.Fatalf("no authorize line: %v\n%s", err, stderr.String())
	}
	var ev struct {
		AuthorizeURL string `json:"authorize_url"`
	}
	if err := json.Unmarshal([]byte(first), &ev); err != nil || ev.AuthorizeURL == "" {
		t.Fatalf("first line %q: %v", first, err)
	}
	fmt.Fprintln(stdin, browserRedirect(t, ev.AuthorizeURL))
	rest, _ := io.ReadAll(r)
	err = cmd.Wait()
	return first + string(rest) + stderr.String(), err
}

// browserRedirect signs in at the authorization URL and returns where the
// provider sends the browser (http://localhost?code=...&state=...).
func browserRedirect(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if loc == "" {
		t.Fatalf("authorization endpoint answered %s without a redirect", resp.Status)
	}
	return loc
}

func runCLI(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(mailgateBinary(t), args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAccountLinkInterrupted: Ctrl-C at "account link"'s paste prompt ends
// the command at once, and the daemon, which was waiting for the pasted
// line, lets the conversation go: its open descriptors come back to what
// they were (it used to keep a socket and a goroutine per interrupted link).
func TestAccountLinkInterrupted(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts the daemon's descriptors in /proc")
	}
	idp, err := fakeidp.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	cfg := writeLinkConfig(t, idp)
	env := append(os.Environ(), "MAILGATE_CONFIG="+cfg,
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	d := startDaemon(t, cfg, env)
	d.listeners(t, 1)
	pid := d.cmd.Process.Pid
	base := openFDs(t, pid)
	for range 3 {
		interruptLink(t, env, "carol@example.com")
	}
	deadline := time.Now().Add(10 * time.Second)
	for n := openFDs(t, pid); n > base; n = openFDs(t, pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon has %d descriptors open, %d before the interrupted links", n, base)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// interruptLink starts "account link", waits for the authorization URL and
// sends SIGINT, as Ctrl-C at the paste prompt does; the command must end.
func interruptLink(t *testing.T, env []string, mailbox string) {
	t.Helper()
	cmd := exec.Command(mailgateBinary(t), "account", "link", "-json", mailbox)
	cmd.Env = env
	stdin, err := cmd.StdinPipe() // open, with nothing typed
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	if line, err := r.ReadString('\n'); err != nil || !strings.Contains(line, "authorize_url") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("first line %q: %v", line, err)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		io.Copy(io.Discard, r)
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("account link after Ctrl-C: %v, want exit status 1", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("account link still waits for the pasted URL 10s after Ctrl-C")
	}
}

// openFDs counts the descriptors process pid has open.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}
