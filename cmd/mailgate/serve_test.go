package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailgate/config"
	"mailgate/proxy"
)

// cutServer is a front end whose sessions outlive the grace period: its
// Shutdown reports that it had to cut them.
type cutServer struct{}

func (cutServer) Serve(net.Listener, proxy.TLSMode) error { return nil }
func (cutServer) Close() error                            { return nil }
func (cutServer) Shutdown(context.Context) error          { return context.DeadlineExceeded }

// A stop that had to cut sessions after the grace period is a clean stop:
// systemd must not see the unit fail because a client was busy.
func TestStopCutsSessionsCleanly(t *testing.T) {
	var buf bytes.Buffer
	d := &daemon{cfg: &config.Config{}, log: slog.New(slog.NewTextHandler(&buf, nil)),
		fronts: map[string]*front{"imap": {srv: cutServer{}}}, retired: []server{cutServer{}}}
	if err := d.stop(); err != nil {
		t.Fatalf("stop: %v, want nil", err)
	}
	if !strings.Contains(buf.String(), "grace period were closed") {
		t.Errorf("no warning logged:\n%s", buf.String())
	}
}

// drainServer is a front end whose sessions take until release is closed
// to end, so that a test can act while stop waits for them.
type drainServer struct {
	draining chan struct{} // closed when Shutdown starts waiting
	release  chan struct{}
}

func (drainServer) Serve(net.Listener, proxy.TLSMode) error { return nil }
func (drainServer) Close() error                            { return nil }
func (s drainServer) Shutdown(ctx context.Context) error {
	close(s.draining)
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A SIGHUP that comes while the daemon drains its sessions (a certificate
// hook, a reload sent during a stop) must not kill it: the sessions get
// their grace period and the store is closed, so coalesced last-used times
// are written. The signal's default action is to end the process, so the
// daemon runs in a child process, and the test fails if the child dies.
func TestHUPDuringStop(t *testing.T) {
	if os.Getenv("MAILGATE_TEST_HUP_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHUPDuringStop$", "-test.count=1")
		cmd.Env = append(os.Environ(), "MAILGATE_TEST_HUP_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("daemon stopping with a SIGHUP: %v\n%s", err, out)
		}
		return
	}
	srv := drainServer{draining: make(chan struct{}), release: make(chan struct{})}
	d := &daemon{cfg: &config.Config{ShutdownGrace: time.Minute}, log: slog.New(slog.DiscardHandler),
		fronts: map[string]*front{"imap": {srv: srv}}}
	d.catchHUP()
	stopped := make(chan error, 1)
	go func() { stopped <- d.stop() }()
	<-srv.draining
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	time.Sleep(200 * time.Millisecond) // the signal is delivered asynchronously
	close(srv.release)
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
}
