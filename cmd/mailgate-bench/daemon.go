package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// daemon is a running "mailgate serve -config FILE" of the real binary,
// with a directory of its own (config, store, admin socket).
type daemon struct {
	cmd        *exec.Cmd
	dir        string
	pass       string // benchUser's app password in this daemon's store
	imap, smtp string // the implicit-TLS listeners
	pop3       string

	mu     sync.Mutex
	tail   []string        // last log lines, to explain a failure
	dump   strings.Builder // stderr after SIGQUIT: the goroutine dump
	listen chan [2]string  // "listening" records: proto, address
	done   chan struct{}   // stderr closed
	quit   bool            // SIGQUIT sent
	once   sync.Once
}

// daemonStartTimeout bounds the wait for the listeners.
const daemonStartTimeout = 30 * time.Second

// startDaemon runs the binary on cfgFile and waits for its IMAP, SMTP and
// POP3 listeners, which it reads from the JSON log's "listening" records.
func startDaemon(bin, cfgFile string, env []string) (*daemon, error) {
	d := &daemon{listen: make(chan [2]string, 4), done: make(chan struct{})}
	d.cmd = exec.Command(bin, "serve", "-config", cfgFile)
	d.cmd.Env = env
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go d.read(bufio.NewScanner(stderr))
	timeout := time.After(daemonStartTimeout)
	for d.imap == "" || d.smtp == "" || d.pop3 == "" {
		select {
		case l := <-d.listen:
			switch l[0] {
			case "imap":
				d.imap = l[1]
			case "smtp":
				d.smtp = l[1]
			case "pop3":
				d.pop3 = l[1]
			}
		case <-d.done:
			d.stop()
			return nil, fmt.Errorf("mailgate serve exited: %v\n%s", d.cmd.ProcessState, d.logTail())
		case <-timeout:
			d.stop()
			return nil, fmt.Errorf("mailgate serve did not listen within %v\n%s", daemonStartTimeout, d.logTail())
		}
	}
	return d, nil
}

// read drains the daemon's log: it must never block on a full pipe.
func (d *daemon) read(sc *bufio.Scanner) {
	defer close(d.done)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		d.line(sc.Text())
	}
}

func (d *daemon) line(l string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.quit {
		d.dump.WriteString(l + "\n")
		return
	}
	if d.tail = append(d.tail, l); len(d.tail) > 40 {
		d.tail = d.tail[1:]
	}
	var rec struct{ Msg, Proto, Tls, Address string }
	if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "listening" && rec.Tls == "implicit" {
		select {
		case d.listen <- [2]string{rec.Proto, rec.Address}:
		default: // a listener reopened at a reload: not waited for
		}
	}
}

func (d *daemon) logTail() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.tail, "\n")
}

// login is how clients log in through this daemon.
func (d *daemon) login() login { return login{user: benchUser, pass: d.pass} }

// signal sends sig to the daemon.
func (d *daemon) signal(sig syscall.Signal) error { return d.cmd.Process.Signal(sig) }

// goroutineDump ends the daemon with SIGQUIT, which makes the Go runtime
// print every goroutine's stack, and returns that dump.
func (d *daemon) goroutineDump() (string, error) {
	d.mu.Lock()
	d.quit = true
	d.mu.Unlock()
	if err := d.signal(syscall.SIGQUIT); err != nil {
		return "", err
	}
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("no goroutine dump within 30s")
	}
	d.stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dump.String(), nil
}

// stop sends SIGTERM, as systemd does, and waits; after 10 s it kills.
func (d *daemon) stop() {
	d.once.Do(func() {
		d.signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
		d.cmd.Wait()
	})
}

// rss is the daemon's resident set in bytes (VmRSS of /proc/PID/status).
func (d *daemon) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS")
}

// cpu is the daemon's user plus system CPU time so far.
func (d *daemon) cpu() (time.Duration, error) { return procCPU(d.cmd.Process.Pid) }

// procCPU is a process's user plus system CPU time so far, its threads
// included (/proc/PID/stat fields 14 and 15, in clock ticks of 1/100 s on
// Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc stat")
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// machineCPU is the time all CPUs of the machine spent busy so far (the
// "cpu" line of /proc/stat: all but idle and iowait), the one budget that
// both paths of a login share with the bench's clients and Dovecot.
func machineCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("parse /proc/stat")
	}
	var busy int64
	for i, v := range f[1:8] { // user nice system idle iowait irq softirq
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/stat: %w", err)
		}
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return time.Duration(busy) * 10 * time.Millisecond, nil
}

// sessionGoroutines counts, in a goroutine dump of a daemon holding n
// sessions, the goroutines that belong to sessions: those whose creator
// ("created by F") made at least n/2 of them. The daemon's own goroutines
// (listeners, signals, timers) come from creators that made a few.
func sessionGoroutines(dump string, n int) int {
	byCreator := map[string]int{}
	creator, in := "", false
	for _, l := range strings.Split(dump, "\n") {
		if strings.HasPrefix(l, "goroutine ") {
			if in {
				byCreator[creator]++
			}
			creator, in = "", true
		} else if c, ok := strings.CutPrefix(l, "created by "); ok {
			creator, _, _ = strings.Cut(c, " in goroutine")
		}
	}
	if in {
		byCreator[creator]++
	}
	total := 0
	for _, k := range byCreator {
		if k >= max(n/2, 1) {
			total += k
		}
	}
	return total
}
