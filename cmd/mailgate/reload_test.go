package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailgate/internal/proxytest"
)

// freePort returns a loopback address nobody listens on right now.
func freePort(t *testing.T) string { return freePorts(t, 1)[0] }

// freePorts returns n different loopback addresses nobody listens on right
// now. Each is held until all are picked: a port closed at once can come
// back from the next pick (TestWebSignInRedirect got its SMTP port again
// for the portal).
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs
}

// daemonConfig is a config with one plaintext loopback listener per protocol.
func daemonConfig(imapAddr, smtpAddr string) string {
	return fmt.Sprintf(`hostname: mail.test
store: {path: state/mailgate.db}
shutdown_grace: 5s
imap:
  listen: [{address: %q, tls: none}]
  upstream: {address: "127.0.0.1:1", tls: implicit}
smtp:
  listen: [{address: %q, tls: none}]
  upstream: {address: "127.0.0.1:1", tls: starttls}
oauth:
  provider: generic
  client_id: test
  token_url: http://127.0.0.1:1/token
  device_authorization_url: http://127.0.0.1:1/device
`, imapAddr, smtpAddr)
}

// testDaemon is the daemon run in-process on a config file that the test
// rewrites and reloads with SIGHUP.
type testDaemon struct {
	t    *testing.T
	file string
	logs *proxytest.LogBuffer
	stop func() int // cancels the daemon and returns its exit code
}

// startDaemonIn writes cfg to a config file in a fresh directory (the
// store under state/), serves it until stop or the test's end, and waits
// until addr answers.
func startDaemonIn(t *testing.T, cfg, addr string) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	d := &testDaemon{t: t, file: filepath.Join(dir, "mailgate.yaml"), logs: &proxytest.LogBuffer{}}
	d.write(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	exit := make(chan int, 1)
	go func() { exit <- run(ctx, []string{"serve", "-config", d.file}, nil, d.logs, d.logs) }()
	code, stopped := 0, false
	d.stop = func() int {
		if !stopped {
			cancel()
			code, stopped = <-exit, true
		}
		return code
	}
	t.Cleanup(func() { d.stop() })
	eventually(t, "daemon up", func() bool { return answers(addr) })
	return d
}

// write replaces the config file with cfg.
func (d *testDaemon) write(cfg string) {
	d.t.Helper()
	if err := os.WriteFile(d.file, []byte(cfg), 0o600); err != nil {
		d.t.Fatal(err)
	}
}

// reload writes cfg and sends SIGHUP; the caller waits for what it expects.
func (d *testDaemon) reload(cfg string) {
	d.t.Helper()
	d.write(cfg)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
}

// reloaded waits for the next "config reloaded" line after n of them.
func (d *testDaemon) reloaded(n int) {
	d.t.Helper()
	eventually(d.t, "config reloaded", func() bool { return strings.Count(d.logs.String(), "config reloaded") > n })
}

// eventually polls cond; the bound only stops a hung test.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("gave up waiting: %s", what)
}

func answers(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && (strings.HasPrefix(line, "* OK") || strings.HasPrefix(line, "220 "))
}

// TestDaemonReload runs the daemon in-process and sends it real signals:
// SIGHUP with an invalid config keeps everything; SIGHUP with the IMAP
// listener moved opens the new port and closes the old one while a
// connection made before goes on; SIGTERM (here: the context) stops it.
func TestDaemonReload(t *testing.T) {
	ports := freePorts(t, 3)
	oldIMAP, newIMAP, smtpAddr := ports[0], ports[1], ports[2]
	d := startDaemonIn(t, daemonConfig(oldIMAP, smtpAddr), oldIMAP)
	logs := d.logs

	live, err := net.Dial("tcp", oldIMAP)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	br := bufio.NewReader(live)
	live.SetReadDeadline(time.Now().Add(30 * time.Second))
	br.ReadString('\n') // greeting

	d.reload("imap: [\n")
	eventually(t, "invalid config refused", func() bool { return strings.Contains(logs.String(), "config reload refused") })
	if !answers(oldIMAP) || !answers(smtpAddr) {
		t.Fatalf("listeners gone after an invalid config:\n%s", logs)
	}

	d.reload(daemonConfig(newIMAP, smtpAddr))
	eventually(t, "new imap port answers", func() bool { return answers(newIMAP) })
	d.reloaded(0)
	if answers(oldIMAP) {
		t.Error("old imap port still answers after the reload")
	}
	if !answers(smtpAddr) {
		t.Error("unchanged smtp listener gone after the reload")
	}
	fmt.Fprintf(live, "a NOOP\r\n")
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "a OK") {
		t.Errorf("connection from before the reload: %q, %v; want a OK", line, err)
	}

	if code := d.stop(); code != 0 {
		t.Fatalf("exit code %d after shutdown:\n%s", code, logs)
	}
	if _, err := br.ReadString('\n'); err == nil {
		t.Error("pre-login connection still open after shutdown")
	}
}

// TestReloadSettings: after a reload that moves the IMAP listener, a
// password created through the daemon's socket shows the new port, as
// docs/cli.md promises ("they stay true when you change ports"), not the
// port the daemon started with, where the user's client would fail.
func TestReloadSettings(t *testing.T) {
	ports := freePorts(t, 3)
	oldIMAP, newIMAP, smtpAddr := ports[0], ports[1], ports[2]
	d := startDaemonIn(t, daemonConfig(oldIMAP, smtpAddr), oldIMAP)
	d.reload(daemonConfig(newIMAP, smtpAddr))
	d.reloaded(0)
	ctx := t.Context()

	var out, errb strings.Builder
	if code := run(ctx, []string{"password", "create", "-config", d.file, "-json", "-name", "phone", "ann@example.com"},
		nil, &out, &errb); code != 0 {
		t.Fatalf("password create: exit %d: %s", code, errb.String())
	}
	var res struct {
		Settings struct{ IMAP []struct{ Port int } }
	}
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(newIMAP)
	if len(res.Settings.IMAP) != 1 || fmt.Sprint(res.Settings.IMAP[0].Port) != p {
		t.Errorf("imap settings after the reload: %+v, want port %s", res.Settings.IMAP, p)
	}
}

// TestReloadKeepsSocket: a reload that changes every listener's settings
// but not its address (here the hostname, in every front end's key) hands
// the bound socket to the new front end instead of closing and binding the
// port again, so a client never meets a closed port: the kernel's socket
// (its inode in /proc/net/tcp) is the same before and after, no dial in a
// loop around the reload fails, and the new settings serve.
func TestReloadKeepsSocket(t *testing.T) {
	ports := freePorts(t, 2)
	imapAddr, smtpAddr := ports[0], ports[1]
	config := func(hostname string) string {
		return strings.Replace(daemonConfig(imapAddr, smtpAddr), "hostname: mail.test", "hostname: "+hostname, 1)
	}
	d := startDaemonIn(t, config("mail.test"), smtpAddr)
	eventually(t, "listeners up", func() bool { return answers(imapAddr) })
	imapSock, smtpSock := listenInode(t, imapAddr), listenInode(t, smtpAddr)

	stop := make(chan struct{})
	failed := make(chan error, 1)
	go func() {
		defer close(failed)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := net.Dial("tcp", smtpAddr)
			if err != nil {
				failed <- err
				return
			}
			c.Close()
		}
	}()
	d.reload(config("mail2.test"))
	d.reloaded(0)
	close(stop)
	if err := <-failed; err != nil {
		t.Errorf("a dial during the reload failed: %v", err)
	}
	if got := listenInode(t, imapAddr); got != imapSock {
		t.Errorf("imap socket %s replaced by %s: the port was closed and bound again", imapSock, got)
	}
	if got := listenInode(t, smtpAddr); got != smtpSock {
		t.Errorf("smtp socket %s replaced by %s: the port was closed and bound again", smtpSock, got)
	}
	// The loop's connections leave the per-address limit as the daemon sees
	// them close: until then a new one may get 421.
	var line string
	eventually(t, "a greeting after the reload", func() bool {
		line = greeting(t, smtpAddr)
		return !strings.HasPrefix(line, "421 ")
	})
	if !strings.HasPrefix(line, "220 mail2.test ") {
		t.Errorf("greeting after the reload: %q; want the new hostname", line)
	}
	if !strings.Contains(d.logs.String(), "listener closed; its sessions continue") {
		t.Errorf("no retired listener logged:\n%s", d.logs)
	}
}

// greeting connects to addr and returns the first line it sends.
func greeting(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("greeting of %s: %v", addr, err)
	}
	return line
}

// listenInode returns the inode of the listening IPv4 socket on addr, from
// /proc/net/tcp: the kernel's identity of the socket, which a close and a
// new bind change.
func listenInode(t *testing.T, addr string) string {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ip := ap.Addr().As4()
	local := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ap.Port())
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && f[1] == local && f[3] == "0A" { // 0A: LISTEN
			return f[9]
		}
	}
	t.Fatalf("no listening socket on %s in /proc/net/tcp", addr)
	return ""
}

// TestReloadLogLevel: log.level applies at a reload, so an admin can turn
// on debug lines to see why a client fails without ending its sessions; a
// change of log.format still needs a restart and says so.
func TestReloadLogLevel(t *testing.T) {
	ports := freePorts(t, 2)
	base := daemonConfig(ports[0], ports[1])
	d := startDaemonIn(t, base, ports[0])
	logs := d.logs

	// A connection reset before login is logged at debug level only, with
	// the client's address and port: reset returns them.
	reset := func() string {
		t.Helper()
		c, err := net.Dial("tcp", ports[0])
		if err != nil {
			t.Fatal(err)
		}
		bufio.NewReader(c).ReadString('\n') // the greeting
		remote := c.LocalAddr().String()    // in the line's read error
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		return remote
	}
	// logged reports whether the debug line for the client at remote is in
	// the log.
	logged := func(remote string) bool {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "connection ended before login") && strings.Contains(l, remote) {
				return true
			}
		}
		return false
	}
	atInfo := reset()
	time.Sleep(100 * time.Millisecond) // time to log it, were it logged
	if logged(atInfo) {
		t.Fatalf("a debug line at level info:\n%s", logs)
	}
	d.reload(base + "log: {level: debug}\n")
	d.reloaded(0)
	atDebug := reset()
	eventually(t, "a debug line after the reload", func() bool { return logged(atDebug) })

	d.reload(base + "log: {level: debug, format: json}\n")
	eventually(t, "log.format needs a restart", func() bool {
		return strings.Contains(logs.String(), "key=log.format")
	})
}
