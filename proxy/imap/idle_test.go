package imap

import (
	"bufio"
	"net"
	"runtime"
	"testing"
	"time"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// TestSlowloris sends one byte every 20 ms and never finishes a command:
// the pre-auth deadline covers the whole time before login, not each read,
// so the proxy closes the connection at the deadline however the bytes
// trickle in.
func TestSlowloris(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, func(o *testOptions) { o.PreAuthTimeout = 300 * time.Millisecond })
	nc := e.dial()
	br := bufio.NewReader(nc)
	expectLine(t, br, "* OK ")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		payload := []byte("a LOGIN slow-user-name-that-never-ends")
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := nc.Write(payload[i%len(payload) : i%len(payload)+1]); err != nil {
				return
			}
		}
	}()
	waitClosed(t, nc, br)
	e.loginClient("other@example.com", nil).Logout()
}

// TestManyIdleConnections opens thousands of connections that never log in.
// The proxy holds them (one goroutine and two small buffers each), keeps
// serving other clients, and the pre-auth timeout closes every one.
func TestManyIdleConnections(t *testing.T) {
	n := proxytest.IdleConnCount(t)
	e := newEnv(t, proxy.TLSNone, func(o *testOptions) { o.PreAuthTimeout = 10 * time.Second })
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatalf("dial after %d connections: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	// Another client is served while they are all open.
	e.loginClient("other@example.com", nil).Logout()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("%d idle connections: %d goroutines, about %d KiB of heap and stack each", n, runtime.NumGoroutine(),
		(int64(after.HeapInuse+after.StackInuse)-int64(before.HeapInuse+before.StackInuse))/int64(n)/1024)
	// Every one gets the greeting and is then closed by the pre-auth timeout.
	buf := make([]byte, 4096)
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		for {
			_, err := c.Read(buf)
			if err == nil {
				continue
			}
			if isTimeout(err) {
				t.Fatalf("connection %d still open after the pre-auth timeout", i)
			}
			break
		}
	}
}
