package main

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailgate/proxy/admin"
)

// TestServeDev runs "mailgate serve -dev" as a newcomer would, reads the
// printed credentials and runs the printed curl commands as they stand:
// list INBOX over IMAPS and the maildrop over POP3S, send over SMTP with
// STARTTLS, find the message over both.
func TestServeDev(t *testing.T) {
	needCommand(t, "curl", "curl")
	cmd := exec.Command(mailgateBinary(t), "serve", "-dev", "-dev-ports", "0,0,0,0,0")
	cmd.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	banner := readBanner(t, stdout)
	if !strings.Contains(banner, "in-process") || !regexp.MustCompile(`fingerprint ([0-9A-F]{2}:){31}[0-9A-F]{2}`).MatchString(banner) {
		t.Fatalf("banner does not say what is simulated or lacks the fingerprint:\n%s", banner)
	}
	list := bannerCommand(t, banner, "List INBOX over IMAPS:")
	send := bannerCommand(t, banner, "Send a message over SMTP with STARTTLS")
	pop := bannerCommand(t, banner, "List the messages over POP3S:")
	if got := runShell(t, list); !strings.Contains(got, "* SEARCH 1") || strings.Contains(got, "SEARCH 1 2") {
		t.Fatalf("INBOX before sending: %q, want the welcome message only", got)
	}
	popList := regexp.MustCompile(`(?m)^(\d+) \d+\r?$`)
	if got := popList.FindAllString(runShell(t, pop), -1); len(got) != 1 {
		t.Fatalf("POP3 LIST before sending: %q, want the welcome message only", got)
	}
	runShell(t, send)
	if got := runShell(t, list); !strings.Contains(got, "* SEARCH 1 2") {
		t.Fatalf("INBOX after sending: %q, want two messages", got)
	}
	if got := popList.FindAllString(runShell(t, pop), -1); len(got) != 2 {
		t.Fatalf("POP3 LIST after sending: %q, want two messages", got)
	}
	read := strings.Replace(bannerCommand(t, banner, "Read the first message:"), "UID=1", "UID=2", 1)
	if got := runShell(t, read); !strings.Contains(got, "Subject: Hello through mailgate") {
		t.Fatalf("message 2: %q", got)
	}
	// The portal's signed-out page, over TLS with the same certificate.
	portal := bannerCommand(t, banner, "(the browser asks you to accept")
	ca := regexp.MustCompile(`certificate:  (\S+)`).FindStringSubmatch(banner)[1]
	if got := runShell(t, "curl --cacert "+ca+" "+portal); !strings.Contains(got, "Sign in") {
		t.Fatalf("portal %s: %q, want a page with Sign in", portal, got)
	}
	// The session log names the mailbox but never the password.
	secret := regexp.MustCompile(`app password: (\S+)`).FindStringSubmatch(banner)[1]
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if strings.Contains(stderr.String(), secret) || !strings.Contains(stderr.String(), "user=demo@mailgate.test") {
		t.Fatalf("log leaks the password or lacks the session lines:\n%s", stderr.String())
	}
}

// readBanner reads stdout up to the banner's last line.
func readBanner(t *testing.T, r io.Reader) string {
	t.Helper()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var b strings.Builder
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("mailgate exited before its banner:\n%s", b.String())
			}
			b.WriteString(l + "\n")
			if strings.Contains(l, "password list -config") {
				go io.Copy(io.Discard, r)
				return b.String()
			}
		case <-timeout:
			t.Fatalf("no banner within a minute:\n%s", b.String())
		}
	}
}

// bannerCommand returns the command on the line after heading.
func bannerCommand(t *testing.T, banner, heading string) string {
	t.Helper()
	_, rest, ok := strings.Cut(banner, heading)
	if !ok {
		t.Fatalf("banner lacks %q", heading)
	}
	lines := strings.SplitN(rest, "\n", 3)
	return strings.TrimSpace(lines[1])
}

func runShell(t *testing.T, command string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", command+" --silent --show-error --max-time 20").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", command, err, out)
	}
	return string(out)
}

// TestDevAddrs: -dev-ports takes four, five or seven ports (the portal and
// POP3 take free ones when not given) and -dev-listen only loopback.
func TestDevAddrs(t *testing.T) {
	for _, tc := range []struct {
		host, ports string
		want        []string // nil: an error
	}{
		{"127.0.0.1", "1,2,3,4", []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"}},
		{"127.0.0.1", "1,2,3,4,5", []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4", "127.0.0.1:5", "127.0.0.1:0", "127.0.0.1:0"}},
		{"::1", "1, 2,3,4,5,6,7", []string{"[::1]:1", "[::1]:2", "[::1]:3", "[::1]:4", "[::1]:5", "[::1]:6", "[::1]:7"}},
		{"127.0.0.1", "1,2,3,4,5,6", nil},
		{"127.0.0.1", "1,2,3", nil},
		{"0.0.0.0", "1,2,3,4,5,6,7", nil},
		{"192.0.2.1", defaultDevPorts, nil},
	} {
		got, err := devAddrs(tc.host, tc.ports)
		if tc.want == nil {
			var ae *admin.Error
			if !errors.As(err, &ae) || ae.Code != admin.CodeUsage {
				t.Errorf("devAddrs(%q, %q) = %v, %v; want a usage error", tc.host, tc.ports, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("devAddrs(%q, %q) = %v, %v; want %v", tc.host, tc.ports, got, err, tc.want)
		}
	}
}
