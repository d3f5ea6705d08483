package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLIHungDaemon: a daemon that takes the request and never answers
// (stopped with SIGSTOP, or stuck) ends the command with exit code 1 and a
// hint, instead of hanging it until the admin presses Ctrl-C.
func TestCLIHungDaemon(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailgate.yaml")
	sock := filepath.Join(dir, "admin.sock")
	err := os.WriteFile(cfg, []byte(`hostname: mail.test
store: { path: mailgate.db }
admin: { socket: admin.sock }
imap:
  listen: [{ address: "127.0.0.1:0", tls: none }]
  upstream: { address: "127.0.0.1:1", tls: implicit }
smtp:
  listen: []
  upstream: { address: "127.0.0.1:1", tls: starttls }
oauth: { provider: generic, client_id: c, token_url: "http://127.0.0.1:1/t", device_authorization_url: "http://127.0.0.1:1/d" }
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() }) // held open, never answered
		}
	}()
	defer func(d time.Duration) { answerTimeout = d }(answerTimeout)
	answerTimeout = 100 * time.Millisecond

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"password", "list", "-config", cfg}, strings.NewReader(""), &stdout, &stderr)
	if ctx.Err() != nil {
		t.Fatal("password list still waiting for the daemon after 10s")
	}
	if code != 1 || !strings.Contains(stderr.String(), "mailgate: admin socket "+sock+": no answer from the daemon in 100ms\n") ||
		!strings.Contains(stderr.String(), "\nmailgate: hint: ") || stdout.Len() != 0 {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, &stdout, &stderr)
	}
}
