package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"

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
