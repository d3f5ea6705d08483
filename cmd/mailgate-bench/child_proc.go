package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// childEnv marks the process as a mailgate child (see runChild).
const childEnv = "MAILGATE_BENCH_CHILD"

// child is a running mailgate child process.
type child struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *json.Decoder
	addrs childAddrs
}

// startChild re-executes this binary as a mailgate child.
func startChild(cfg *childConfig) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, in: in, out: json.NewDecoder(bufio.NewReader(out))}
	b, _ := json.Marshal(cfg)
	in.Write(append(b, '\n'))
	if err := c.out.Decode(&c.addrs); err != nil {
		c.stop()
		return nil, fmt.Errorf("mailgate child did not start: %w", err)
	}
	return c, nil
}

func (c *child) command(line string, v any) error {
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		return err
	}
	return c.out.Decode(v)
}

func (c *child) stats() (childStats, error) {
	var st childStats
	err := c.command("stats", &st)
	return st, err
}

// rss is the child's resident set in bytes (VmRSS of /proc/PID/status).
func (c *child) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
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

// cpu is the child's user plus system CPU time so far (/proc/PID/stat
// fields 14 and 15, in clock ticks of 1/100 s on Linux).
func (c *child) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
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

func (c *child) stop() {
	c.in.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}
