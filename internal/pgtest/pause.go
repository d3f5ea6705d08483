package pgtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Pause freezes the server and every backend (SIGSTOP): connections stay
// open but nothing answers, as when a database host hangs or a network
// path drops packets. Resume thaws them.
func (c *Cluster) Pause() error { return c.signalAll(syscall.SIGSTOP) }

// Resume undoes Pause.
func (c *Cluster) Resume() error { return c.signalAll(syscall.SIGCONT) }

// signalAll signals the postmaster of this cluster and its children, by
// pid (read from postmaster.pid), never by name.
func (c *Cluster) signalAll(sig syscall.Signal) error {
	b, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return fmt.Errorf("pgtest: server not running: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return fmt.Errorf("pgtest: postmaster.pid: %w", err)
	}
	pids := append([]int{pid}, children(pid)...)
	for _, p := range pids {
		if err := syscall.Kill(p, sig); err != nil && err != syscall.ESRCH {
			return fmt.Errorf("pgtest: signal %d: %w", p, err)
		}
	}
	return nil
}

// children lists the processes whose parent is pid, from /proc.
func children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parens.
		i := strings.LastIndexByte(string(b), ')')
		fields := strings.Fields(string(b[i+1:]))
		if len(fields) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == pid {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			out = append(out, child)
		}
	}
	return out
}
