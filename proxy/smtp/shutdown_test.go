package smtp

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"mailgate/proxy"
)

// TestCloseStopsAccepting: sessions go on after Close, new connections are
// refused, and Serve returns nil (checked by newEnv's cleanup).
func TestCloseStopsAccepting(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.login()
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	sendSimple(c, "carol@example.net", "Subject: x\r\n\r\nafter close\r\n")
	waitRefused(t, e.addrs[proxy.TLSNone])
}

// TestShutdownIdle: a session between transactions gets 421 and is closed;
// one that has not said EHLO yet is closed.
func TestShutdownIdle(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.login()
	fresh := e.dial(proxy.TLSStartTLS)
	if err := e.srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if got := c.expectClosed(); !equal(got, []string{"421 4.3.2 Service shutting down"}) {
		t.Errorf("idle session got %q, want one 421", got)
	}
	fresh.expectClosed()
	if n := e.sessions.Len(); n != 0 {
		t.Errorf("tracker has %d sessions after Shutdown", n)
	}
}

// TestShutdownLetsDataFinish: a DATA in progress completes and is accepted,
// then the session gets 421.
func TestShutdownLetsDataFinish(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.login()
	c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.cmd("RCPT TO:<carol@example.net>", "250 2.0.0 I'll make sure <carol@example.net> gets this")
	c.cmd("DATA", "354 Go ahead. End your data with <CR><LF>.<CR><LF>")
	c.send("Subject: in flight")
	c.send("")
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(context.Background()) }()
	waitRefused(t, e.addrs[proxy.TLSNone]) // Shutdown has begun
	c.send("last line")
	c.send(".")
	c.expect("250 2.0.0 OK: queued")
	if got := c.expectClosed(); !equal(got, []string{"421 4.3.2 Service shutting down"}) {
		t.Errorf("after DATA got %q, want one 421", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if got := e.deliv.all(); len(got) != 1 {
		t.Fatalf("delivered %d messages, want 1", len(got))
	}
}

// TestShutdownDeadline: when ctx ends first, a DATA in progress gets 421,
// the connection is closed and the upstream never gets the message.
func TestShutdownDeadline(t *testing.T) {
	e := newEnv(t, envConfig{})
	started, upErr := cutOffHook(e)
	c := e.login()
	c.cmd("MAIL FROM:<"+alice+">", "250 2.0.0 Roger, accepting mail from <alice@example.com>")
	c.cmd("RCPT TO:<carol@example.net>", "250 2.0.0 I'll make sure <carol@example.net> gets this")
	c.cmd("DATA", "354 Go ahead. End your data with <CR><LF>.<CR><LF>")
	c.send("Subject: cut off")
	<-started // the upstream is inside DATA
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	if got := c.expectClosed(); !equal(got, []string{"421 4.3.2 Service shutting down"}) {
		t.Errorf("got %q, want one 421", got)
	}
	if err := <-upErr; err == nil {
		t.Fatal("upstream received a complete message")
	}
}

// waitRefused waits until addr refuses connections.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		conn.Close()
		time.Sleep(time.Millisecond)
	}
}

// cutOffHook makes the upstream report when a message starts arriving and
// how reading it ended.
func cutOffHook(e *env) (started chan struct{}, upErr chan error) {
	started, upErr = make(chan struct{}), make(chan error, 1)
	e.deliv.hook = func(r io.Reader) error {
		close(started)
		_, err := io.Copy(io.Discard, r)
		upErr <- err
		return err
	}
	return started, upErr
}
