package mailstack

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stopTimeout bounds how long Stop waits for a master and its children to
// exit after SIGTERM before it uses SIGKILL.
const stopTimeout = 10 * time.Second

// daemon is a master process (dovecot or postfix) run in the foreground as
// our child, so we know its pid without a pid file race, reap it, and take it
// down with us if the test binary dies (Pdeathsig).
type daemon struct {
	name string
	log  string // the daemon's log file, quoted in errors
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait returned
}

func startDaemon(name, log string, argv ...string) (*daemon, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	// Setpgid: Postfix's master stops its children by signalling its own
	// process group, which must therefore be its own.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	// Output goes to a file, not a pipe: cmd.Wait would otherwise also wait
	// for every process that inherited the pipe to close it.
	out, err := os.OpenFile(log+".out", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{name: name, log: log, cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

func (d *daemon) pid() int {
	if d == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// exited reports whether the master is gone; ready checks call it so a
// daemon that dies at start-up fails fast with its log.
func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the master (both masters then stop their children,
// as "postfix stop" and "doveadm stop" do), waits for it, then sends SIGTERM
// to the rest of its process group: Dovecot's login processes otherwise
// outlive the master for as long as their clients stay connected.
func (d *daemon) stop() error {
	if d == nil {
		return nil
	}
	pids := descendants(d.pid())
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(stopTimeout):
		d.cmd.Process.Kill()
		<-d.done
	}
	syscall.Kill(-d.pid(), syscall.SIGTERM) // the group id is the master's pid (Setpgid)
	if left := waitGone(pids, stopTimeout); len(left) > 0 {
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		return fmt.Errorf("stop %s: processes %v ignored SIGTERM", d.name, left)
	}
	return nil
}

// waitGone polls until none of pids is alive, and returns the survivors.
func waitGone(pids []int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		var left []int
		for _, pid := range pids {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether a process with this pid exists and is not a zombie
// (a zombie has exited; only its parent's bookkeeping is left).
func alive(pid int) bool {
	state, _, err := procStat(pid)
	return err == nil && state != 'Z'
}

// procStat reads the state and parent pid from /proc/PID/stat. The command
// name in parentheses may itself contain spaces and parentheses, so parse
// from the last ')'.
func procStat(pid int) (state byte, ppid int, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if i < 0 || len(f) < 2 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0][0], ppid, err
}

// descendants returns pid followed by all its live descendants.
func descendants(pid int) []int {
	if pid == 0 || !alive(pid) {
		return nil
	}
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, ppid, err := procStat(p); err == nil && state != 'Z' {
			children[ppid] = append(children[ppid], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}
