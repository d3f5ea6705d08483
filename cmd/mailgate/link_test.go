package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"mailgate/internal/devup"
	"mailgate/internal/fakeidp"
)

// TestAccountLinkAuthCode links a mailbox with the authorization-code flow
// (the one Google needs): the CLI prints the authorization URL, the admin
// signs in and pastes the address the browser was sent to. Both with the
// daemon running (the pasted line travels over the admin socket) and
// without it. The link is proven by an upstream login as the mailbox; a
// sign-in as another user links nothing and is refused before any upstream
// login.
func TestAccountLinkAuthCode(t *testing.T) {
	for _, withDaemon := range []bool{false, true} {
		t.Run(fmt.Sprintf("daemon=%v", withDaemon), func(t *testing.T) {
			idp := newLinkIDP(t, nil)
			cfg, up := writeLinkConfig(t, idp)
			env := linkEnv(cfg)
			if withDaemon {
				startDaemon(t, cfg, env).listeners(t, 1)
			}
			out, err := linkPasting(t, env, "Carol@Example.com")
			if err != nil || !strings.Contains(out, `"linked":true`) {
				t.Fatalf("link: %v\n%s", err, out)
			}
			if got := up.loginsOf("carol@example.com"); got != "ok" {
				t.Fatalf("upstream logins as carol: %q, want one that succeeded", got)
			}
			list, err := runCLI(t, env, "account", "list", "-json")
			if err != nil || !strings.Contains(list, `"mailbox":"carol@example.com","linked":true`) {
				t.Fatalf("account list after link: %v\n%s", err, list)
			}
			// The ID token names another user: refused at once.
			idp.SetAuthorizeUser("mallory@example.com")
			out, err = linkPasting(t, env, "dave@example.com")
			wantExit1(t, err, out, "another mailbox", "signed in as mallory@example.com", "hint: sign in as dave@example.com")
			if got := up.loginsOf("dave@example.com"); got != "" {
				t.Fatalf("upstream logins as dave: %q, want none", got)
			}
			if list, _ := runCLI(t, env, "account", "list", "-json"); strings.Contains(list, "dave@example.com") {
				t.Fatalf("dave linked after mallory signed in:\n%s", list)
			}
		})
	}
}

// TestAccountLinkClaimsNotTrusted: the ID token's claims never link a
// mailbox by themselves (issue 13, "nOAuth"). Mallory signs in with an ID
// token that names the victim, as her own tenant admin can arrange: the
// upstream login as the victim with her token fails, and nothing is linked.
// A matching ID token with an upstream login that fails links nothing
// either.
func TestAccountLinkClaimsNotTrusted(t *testing.T) {
	idp := newLinkIDP(t, nil)
	cfg, up := writeLinkConfig(t, idp)
	env := linkEnv(cfg)

	idp.SetAuthorizeUser("mallory@example.com")
	idp.SetIDTokenMailbox("victim@example.com")
	out, err := linkPasting(t, env, "victim@example.com")
	wantExit1(t, err, out, "another mailbox", "upstream login as victim@example.com")
	if got := up.loginsOf("victim@example.com"); got != "refused" {
		t.Fatalf("upstream logins as the victim: %q, want one refused", got)
	}
	wantUnlinked(t, env, "victim@example.com")

	idp.SetAuthorizeUser("")
	idp.SetIDTokenMailbox("")
	up.setDown(true)
	out, err = linkPasting(t, env, "erin@example.com")
	wantExit1(t, err, out, "verify mailbox upstream")
	if got := up.loginsOf("erin@example.com"); got != "refused" {
		t.Fatalf("upstream logins as erin: %q, want one refused", got)
	}
	wantUnlinked(t, env, "erin@example.com")
}

// TestAccountLinkAllowedTenants: Microsoft on tenant common links only
// users whose ID token's tid is in oauth.allowed_tenants, and still proves
// the link upstream.
func TestAccountLinkAllowedTenants(t *testing.T) {
	const allowed, other = "72f988bf-86f1-41af-91ab-2d7cd011db47", "9188040d-6c67-4c5b-b112-36a304b66dad"
	for _, tt := range []struct {
		tid    string
		linked bool
	}{{other, false}, {strings.ToUpper(allowed), true}} {
		idp := newLinkIDP(t, &fakeidp.Options{TenantID: tt.tid})
		cfg, up := writeLinkConfigWith(t, idp, fmt.Sprintf(`oauth:
  provider: microsoft
  tenant: common
  allowed_tenants: [%s]
  client_id: mailgate-test
  token_url: %q
  device_authorization_url: %q
`, allowed, idp.TokenURL(), idp.DeviceAuthURL()))
		env := linkEnv(cfg)
		out, err := linkDevice(t, env, idp, "frank@example.com")
		if !tt.linked {
			wantExit1(t, err, out, "tenant that is not allowed", other)
			if got := up.loginsOf("frank@example.com"); got != "" {
				t.Fatalf("upstream logins from a refused tenant: %q, want none", got)
			}
			wantUnlinked(t, env, "frank@example.com")
			continue
		}
		if err != nil || !strings.Contains(out, `"linked":true`) || up.loginsOf("frank@example.com") != "ok" {
			t.Fatalf("link from an allowed tenant: %v (upstream %q)\n%s", err, up.loginsOf("frank@example.com"), out)
		}
	}
}

func newLinkIDP(t *testing.T, opts *fakeidp.Options) *fakeidp.Server {
	t.Helper()
	idp, err := fakeidp.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	return idp
}

// linkEnv is the CLI's environment for config cfg; a race-enabled binary
// does not sleep a second at exit.
func linkEnv(cfg string) []string {
	return append(os.Environ(), "MAILGATE_CONFIG="+cfg,
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

// wantExit1 checks that a CLI run failed with exit status 1 and said subs.
func wantExit1(t *testing.T, err error, out string, subs ...string) {
	t.Helper()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\n%s", err, out)
	}
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

func wantUnlinked(t *testing.T, env []string, mailbox string) {
	t.Helper()
	if list, _ := runCLI(t, env, "account", "list", "-json"); strings.Contains(list, mailbox) {
		t.Fatalf("%s linked:\n%s", mailbox, list)
	}
}

// linkUpstream is an in-process IMAP upstream (internal/devup) that, like
// Exchange Online and Gmail, accepts an XOAUTH2 login only with a token the
// provider issued for that mailbox. It records each login's outcome.
type linkUpstream struct {
	idp    *fakeidp.Server
	addr   string
	mu     sync.Mutex
	logins map[string][]string // mailbox -> "ok" or "refused", in order
	down   bool
}

func startLinkUpstream(t *testing.T, idp *fakeidp.Server) *linkUpstream {
	t.Helper()
	u := &linkUpstream{idp: idp, logins: map[string][]string{}}
	srv := devup.NewIMAP(&devup.IMAPOptions{Verify: u.verify, Logger: slog.New(slog.DiscardHandler)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	u.addr = ln.Addr().String()
	return u
}

func (u *linkUpstream) verify(user, token string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	user = strings.ToLower(user)
	if u.down || !u.idp.ValidFor(token, user) {
		u.logins[user] = append(u.logins[user], "refused")
		return errors.New("invalid token")
	}
	u.logins[user] = append(u.logins[user], "ok")
	return nil
}

func (u *linkUpstream) setDown(down bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.down = down
}

// loginsOf returns the outcomes of the logins as mailbox, space-separated.
func (u *linkUpstream) loginsOf(mailbox string) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return strings.Join(u.logins[mailbox], " ")
}

// writeLinkConfig writes a config for linking with the authorization-code
// flow of a generic provider at idp, with an upstream that checks idp's
// tokens.
func writeLinkConfig(t *testing.T, idp *fakeidp.Server) (string, *linkUpstream) {
	t.Helper()
	return writeLinkConfigWith(t, idp, fmt.Sprintf(`oauth:
  provider: generic
  client_id: mailgate-test
  token_url: %q
  auth_url: %q
`, idp.TokenURL(), idp.AuthURL()))
}

// writeLinkConfigWith writes a config with the given oauth section.
func writeLinkConfigWith(t *testing.T, idp *fakeidp.Server, oauth string) (string, *linkUpstream) {
	t.Helper()
	up := startLinkUpstream(t, idp)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailgate.yaml")
	yaml := fmt.Sprintf(`store: { path: mailgate.db }
admin: { socket: admin.sock }
log: { format: json }
imap:
  listen: [{ address: "127.0.0.1:0", tls: none }]
  upstream: { address: %q, tls: none }
smtp:
  listen: []
  upstream: { address: "127.0.0.1:1", tls: starttls }
`, up.addr) + oauth
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, up
}

// linkDevice runs "account link -json" for the device flow and approves the
// printed code at idp as mailbox. It returns stdout and stderr together.
func linkDevice(t *testing.T, env []string, idp *fakeidp.Server, mailbox string) (string, error) {
	t.Helper()
	cmd := exec.Command(mailgateBinary(t), "account", "link", "-json", mailbox)
	cmd.Env = env
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
	var ev struct {
		UserCode string `json:"user_code"`
	}
	if err != nil || json.Unmarshal([]byte(first), &ev) != nil || ev.UserCode == "" {
		cmd.Wait()
		t.Fatalf("first line %q: %v\n%s", first, err, stderr.String())
	}
	if err := idp.ApproveDevice(ev.UserCode, mailbox); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	err = cmd.Wait()
	return first + string(rest) + stderr.String(), err
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
	idp := newLinkIDP(t, nil)
	cfg, _ := writeLinkConfig(t, idp)
	env := linkEnv(cfg)
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
