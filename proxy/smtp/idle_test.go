package smtp

import (
	"bufio"
	"net"
	"testing"
	"time"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// TestSlowloris covers both ways to hold a connection without logging in:
// one byte at a time (go-smtp's ReadTimeout is per command, so this one is
// set long) and a complete NOOP now and then. The pre-auth timeout closes
// both.
func TestSlowloris(t *testing.T) {
	e := newEnv(t, envConfig{preAuth: 300 * time.Millisecond, readTO: time.Minute})
	for _, drip := range [][]byte{[]byte("EHLO slow.client.test"), []byte("NOOP\r\n")} {
		nc, err := net.Dial("tcp", e.addrs[proxy.TLSNone])
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		stop := make(chan struct{})
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				n := 1
				if drip[len(drip)-1] == '\n' {
					n = len(drip) // whole commands
				}
				if _, err := nc.Write(drip[i*n%len(drip) : i*n%len(drip)+n]); err != nil {
					return
				}
			}
		}()
		expectEOF(t, nc, bufio.NewReader(nc))
		close(stop)
	}
	sendSimple(e.login(), "bob@example.com", "Subject: still served\r\n\r\nhi\r\n")
}

// TestAuthenticatedOutlivesPreAuthTimeout: the pre-auth timeout stops at
// AUTH, so a logged-in session is not cut.
func TestAuthenticatedOutlivesPreAuthTimeout(t *testing.T) {
	e := newEnv(t, envConfig{preAuth: 200 * time.Millisecond})
	c := e.login()
	time.Sleep(400 * time.Millisecond) // past the pre-auth timeout
	sendSimple(c, "bob@example.com", "Subject: after the pre-auth timeout\r\n\r\nhi\r\n")
}

// TestManyIdleConnections opens thousands of connections that never log in:
// the proxy holds them, keeps serving another client, and the pre-auth
// timeout closes every one.
func TestManyIdleConnections(t *testing.T) {
	n := proxytest.IdleConnCount(t)
	e := newEnv(t, envConfig{preAuth: 10 * time.Second})
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", e.addrs[proxy.TLSNone])
		if err != nil {
			t.Fatalf("dial after %d connections: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	sendSimple(e.login(), "bob@example.com", "Subject: served beside idle ones\r\n\r\nhi\r\n")
	buf := make([]byte, 4096)
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		for {
			_, err := c.Read(buf)
			if err == nil {
				continue
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("connection %d still open after the pre-auth timeout", i)
			}
			break
		}
	}
	t.Logf("held %d idle connections", n)
}
