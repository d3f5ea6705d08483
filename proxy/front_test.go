package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startFront serves handle on a Front over 127.0.0.1:0.
func startFront(t *testing.T, o FrontOptions, handle func(net.Conn)) (*Front, string, *lockedBuf) {
	t.Helper()
	var logs lockedBuf
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	f := NewFront(&o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- f.Serve(ln, TLSNone, handle) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		f.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve = %v after Shutdown", err)
		}
	})
	return f, ln.Addr().String(), &logs
}

func dialFront(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second)) // hang guard
	return nc, bufio.NewReader(nc)
}

// echoLines greets, then echoes lines; "panic" panics.
func echoLines(nc net.Conn) {
	defer nc.Close()
	io.WriteString(nc, "hello\r\n")
	br := bufio.NewReader(nc)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if strings.TrimSpace(line) == "panic" {
			panic("injected")
		}
		io.WriteString(nc, line)
	}
}

// TestFrontPanicClosesOnlyItsConnection: a panic in one connection's
// handler is logged with its stack and closes that connection; another
// connection and the listener go on.
func TestFrontPanicClosesOnlyItsConnection(t *testing.T) {
	f, addr, logs := startFront(t, FrontOptions{Proto: "test"}, echoLines)
	other, obr := dialFront(t, addr)
	obr.ReadString('\n')
	bad, br := dialFront(t, addr)
	br.ReadString('\n')
	io.WriteString(bad, "panic\r\n")
	if _, err := br.ReadString('\n'); err == nil {
		t.Fatal("panicking connection still open")
	}
	io.WriteString(other, "ping\r\n")
	if line, err := obr.ReadString('\n'); err != nil || line != "ping\r\n" {
		t.Fatalf("other connection after the panic: %q, %v", line, err)
	}
	if _, br := dialFront(t, addr); true {
		if line, _ := br.ReadString('\n'); line != "hello\r\n" {
			t.Fatalf("new connection after the panic: %q", line)
		}
	}
	// The handler's own deferred Close runs while the panic unwinds, before
	// the Front's recover logs it: wait for the line.
	want := `level=ERROR msg="panic serving connection; closed it" proto=test remote=127.0.0.1 panic=injected stack=`
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), want); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no panic log line:\n%s", logs)
		}
	}
	if out := logs.String(); !strings.Contains(out, "front_test.go") {
		t.Fatalf("the log line has no stack:\n%s", out)
	}
	for deadline := time.Now().Add(20 * time.Second); f.Conns() != 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections tracked, want 2 (the panicked one forgotten)", f.Conns())
		}
	}
}

// TestFrontRefusesOverLimits: a connection over the limits gets
// RefuseLine instead of a handler.
func TestFrontRefusesOverLimits(t *testing.T) {
	_, addr, logs := startFront(t, FrontOptions{Proto: "test", RefuseLine: "* BYE full\r\n",
		Limits: NewLimits(&LimitsOptions{ConnsPerIP: 1})}, echoLines)
	_, br := dialFront(t, addr)
	br.ReadString('\n')
	_, br2 := dialFront(t, addr)
	if line, _ := br2.ReadString('\n'); line != "* BYE full\r\n" {
		t.Fatalf("over the limit: %q", line)
	}
	if !strings.Contains(logs.String(), `msg="connection refused: too many connections" proto=test remote=127.0.0.1`) {
		t.Fatalf("log:\n%s", logs)
	}
}

// TestFrontPreAuthDeadline closes a connection that never logs in.
func TestFrontPreAuthDeadline(t *testing.T) {
	_, addr, _ := startFront(t, FrontOptions{Proto: "test", PreAuthTimeout: 50 * time.Millisecond}, echoLines)
	_, br := dialFront(t, addr)
	br.ReadString('\n')
	if _, err := br.ReadString('\n'); err == nil || isTimeout(err) {
		t.Fatalf("read after the pre-auth deadline: %v, want closed", err)
	}
}

// TestFrontShutdown closes connections that have not logged in, asks
// logged-in ones to drain until they agree, and forces them at the end.
func TestFrontShutdown(t *testing.T) {
	agree := make(chan struct{})
	var forced sync.WaitGroup
	forced.Add(1)
	f, addr, _ := startFront(t, FrontOptions{Proto: "test", DrainEvery: 10 * time.Millisecond}, func(nc net.Conn) {
		c := ConnOf(nc)
		io.WriteString(nc, "hello\r\n")
		br := bufio.NewReader(nc)
		if line, _ := br.ReadString('\n'); line != "login\r\n" {
			nc.Close()
			return
		}
		c.OnDrain(func(force bool) bool {
			select {
			case <-agree:
				nc.Close()
				return true
			default:
			}
			if force {
				forced.Done()
			}
			return force
		})
		c.LoggedIn()
		io.WriteString(nc, "ok\r\n")
		br.ReadString('\n')
	})
	pre, pbr := dialFront(t, addr)
	pbr.ReadString('\n')
	sess, sbr := dialFront(t, addr)
	sbr.ReadString('\n')
	io.WriteString(sess, "login\r\n")
	sbr.ReadString('\n')
	_ = pre
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := f.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a session that never agrees = %v, want the deadline", err)
	}
	forced.Wait()
	if _, err := pbr.ReadString('\n'); err == nil {
		t.Fatal("pre-auth connection still open after Shutdown")
	}
	close(agree)
}

// TestFrontEvictsOldestPreauth: at the total, the oldest connection that
// has not logged in is dropped for the newcomer; a logged-in one never is.
func TestFrontEvictsOldestPreauth(t *testing.T) {
	_, addr, logs := startFront(t, FrontOptions{Proto: "test", RefuseLine: "* BYE full\r\n",
		Limits: NewLimits(&LimitsOptions{MaxConns: 2})}, func(nc net.Conn) {
		br := bufio.NewReader(nc)
		io.WriteString(nc, "hello\r\n")
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				nc.Close()
				return
			}
			if line == "login\r\n" {
				ConnOf(nc).LoggedIn()
			}
			io.WriteString(nc, line)
		}
	})
	in, inbr := dialFront(t, addr)
	inbr.ReadString('\n')
	io.WriteString(in, "login\r\n")
	inbr.ReadString('\n')
	_, oldbr := dialFront(t, addr)
	oldbr.ReadString('\n')
	_, newbr := dialFront(t, addr)
	if line, _ := newbr.ReadString('\n'); line != "hello\r\n" {
		t.Fatalf("newcomer at the total: %q, want a greeting", line)
	}
	if _, err := oldbr.ReadString('\n'); err == nil {
		t.Fatal("oldest pre-auth connection not dropped")
	}
	io.WriteString(in, "still\r\n")
	if line, err := inbr.ReadString('\n'); line != "still\r\n" {
		t.Fatalf("logged-in connection after the eviction: %q, %v", line, err)
	}
	if !strings.Contains(logs.String(), `msg="connection dropped to make room: not logged in" proto=test`) {
		t.Fatalf("log:\n%s", logs)
	}
}

// TestFrontHandshakeTimeout: on an implicit TLS listener a client that
// never starts its handshake is closed after HandshakeTimeout, long before
// the pre-auth deadline, and never reaches the handler.
func TestFrontHandshakeTimeout(t *testing.T) {
	var called atomic.Bool
	f := NewFront(&FrontOptions{Proto: "test", TLSConfig: &tls.Config{},
		HandshakeTimeout: 50 * time.Millisecond, PreAuthTimeout: time.Hour})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go f.Serve(ln, TLSImplicit, func(nc net.Conn) { called.Store(true); nc.Close() })
	defer f.Close()
	nc, br := dialFront(t, ln.Addr().String())
	_ = nc
	if _, err := br.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("silent TLS client: %v, want closed", err)
	}
	for deadline := time.Now().Add(20 * time.Second); f.Conns() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("silent TLS client still tracked")
		}
	}
	if called.Load() {
		t.Fatal("the handler got a connection without a handshake")
	}
}

// TestQuietConnEndsBetweenResponses: while the upstream keeps writing to
// the client the session is not quiet; it ends only after a pause, after
// the last relayed byte and the goodbye, and no relay write follows.
func TestQuietConnEndsBetweenResponses(t *testing.T) {
	client, proxySide := net.Pipe()
	defer client.Close()
	ended := make(chan struct{})
	qc := NewQuietConn(proxySide, func() { proxySide.Close(); close(ended) })
	got := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(client)
		got <- string(b)
	}()
	qc.Write([]byte("part one\r\n"))
	if qc.EndIfQuiet(time.Hour, "bye\r\n") {
		t.Fatal("ended right after a write")
	}
	qc.Write([]byte("part two\r\n"))
	if !qc.EndIfQuiet(0, "bye\r\n") {
		t.Fatal("not ended once quiet")
	}
	<-ended
	if _, err := qc.Write([]byte("late\r\n")); err == nil {
		t.Fatal("relay write after the end succeeded")
	}
	if want := "part one\r\npart two\r\nbye\r\n"; <-got != want {
		t.Fatalf("client got something else than %q", want)
	}
}
