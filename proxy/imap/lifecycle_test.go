package imap

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// waitClosed fails unless the proxy closes nc (a hang guard, not a timing
// assertion).
func waitClosed(t *testing.T, nc net.Conn, br *bufio.Reader) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, err := br.ReadString('\n')
		if err == nil {
			continue // e.g. a BYE before the close
		}
		if isTimeout(err) {
			t.Fatal("connection still open")
		}
		return
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestClosePasswordEndsSession(t *testing.T) {
	e := newEnv(t, proxy.TLSImplicit, nil)
	c := e.loginClient("ann@example.com", nil)
	if n := e.sessions.Len(); n != 1 {
		t.Fatalf("registry has %d sessions, want 1", n)
	}
	if n := e.sessions.ClosePassword("pw-other"); n != 0 {
		t.Fatalf("ClosePassword(other) closed %d", n)
	}
	if n := e.sessions.ClosePassword("pw-ann@example.com"); n != 1 {
		t.Fatalf("ClosePassword closed %d sessions, want 1", n)
	}
	select {
	case <-c.Closed():
	case <-time.After(20 * time.Second):
		t.Fatal("client connection still open after ClosePassword")
	}
	waitSessions(t, e.sessions, 0)
}

func TestShutdownClosesWhatIsLeft(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, nil)
	c := e.loginClient("ann@example.com", nil)
	pre := e.dial()
	br := bufio.NewReader(pre)
	if line, _ := br.ReadString('\n'); !strings.HasPrefix(line, "* OK") {
		t.Fatalf("greeting %q", line)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no grace period: everything is closed at once
	if err := e.srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	<-c.Closed()
	waitClosed(t, pre, br)
	if _, err := net.Dial("tcp", e.addr); err == nil {
		t.Fatal("listener still accepting after Shutdown")
	}
}

// TestShutdownWaitsForSessions: a session whose upstream is not quiet is
// not interrupted. A quiet period of an hour makes this one count as busy
// however slowly the test runs.
func TestShutdownWaitsForSessions(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, func(o *testOptions) { o.ShutdownQuiet = time.Hour })
	c := e.loginClient("ann@example.com", nil)
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(context.Background()) }()
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("session broken by Shutdown: %v", err)
	}
	c.Logout().Wait()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown = %v, want nil once the session ended", err)
	}
}

func TestLineTooLong(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, nil)
	nc := e.dial()
	br := bufio.NewReader(nc)
	br.ReadString('\n')
	nc.Write([]byte("a1 LOGIN " + strings.Repeat("x", 9000) + "\r\n"))
	if line, _ := br.ReadString('\n'); line != "* BYE Command too long\r\n" {
		t.Fatalf("got %q, want BYE", line)
	}
	waitClosed(t, nc, br)
}

func TestPreAuthTimeout(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, func(o *testOptions) { o.PreAuthTimeout = 50 * time.Millisecond })
	nc := e.dial()
	br := bufio.NewReader(nc)
	br.ReadString('\n')
	waitClosed(t, nc, br)
}

func TestServeNeedsTLSConfig(t *testing.T) {
	s := New(&Options{})
	ln := proxytest.Listen(t)
	defer ln.Close()
	for _, mode := range []proxy.TLSMode{proxy.TLSImplicit, proxy.TLSStartTLS} {
		if err := s.Serve(ln, mode); !errors.Is(err, proxy.ErrNoTLSConfig) {
			t.Errorf("Serve(%s) without TLSConfig = %v, want ErrNoTLSConfig", mode, err)
		}
	}
	s.Close()
	if err := s.Serve(ln, proxy.TLSNone); err != nil {
		t.Errorf("Serve after Close = %v, want nil", err)
	}
}

// TestShutdownByeIdle: an idle relayed session gets "* BYE" and is closed,
// so Shutdown finishes without waiting for its grace period (it would return
// the context's error if it had to close the session at the deadline).
func TestShutdownByeIdle(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, func(o *testOptions) { o.ShutdownQuiet = 50 * time.Millisecond })
	nc := e.dial()
	br := bufio.NewReader(nc)
	expectLine(t, br, "* OK ")
	nc.Write([]byte("a LOGIN ann@example.com good\r\n"))
	expectLine(t, br, "a OK ")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v, want nil: the idle session should have ended with BYE", err)
	}
	nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	expectLine(t, br, "* BYE mailgate shutting down")
	waitClosed(t, nc, br)
	waitSessions(t, e.sessions, 0)
}

// TestByeNotInsideAResponse: while the upstream keeps writing to the
// client, the session is not quiet; the BYE comes only after a pause, and
// after the last relayed byte.
func TestByeNotInsideAResponse(t *testing.T) {
	client, proxySide := net.Pipe()
	defer client.Close()
	ended := make(chan struct{})
	bc := proxy.NewQuietConn(proxySide, func() { proxySide.Close(); close(ended) })
	got := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(client)
		got <- string(b)
	}()
	if _, err := bc.Write([]byte("* 1 FETCH (BODY[] {5}\r\n")); err != nil {
		t.Fatal(err)
	}
	if bc.EndIfQuiet(time.Hour, byeText) {
		t.Fatal("BYE right after a write")
	}
	bc.Write([]byte("hello)\r\n"))
	if !bc.EndIfQuiet(0, byeText) {
		t.Fatal("no BYE once quiet")
	}
	<-ended
	if _, err := bc.Write([]byte("late\r\n")); err == nil {
		t.Fatal("relay write after BYE succeeded")
	}
	if want := "* 1 FETCH (BODY[] {5}\r\nhello)\r\n" + byeText; <-got != want {
		t.Fatalf("client got something else than %q", want)
	}
}

// TestCloseKeepsSessions is what a config reload relies on: the replaced
// front end stops accepting, but a relayed session goes on.
func TestCloseKeepsSessions(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, nil)
	c := e.loginClient("ann@example.com", nil)
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if nc, err := net.Dial("tcp", e.addr); err == nil {
		nc.Close()
		t.Fatal("listener still accepting after Close")
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("session after Close: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT after Close: %v", err)
	}
}
