package imap

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"mailgate/proxy"
)

// fakeDials hands the pool one end of a pipe per dial and keeps the other.
type fakeDials struct {
	mu    sync.Mutex
	n     atomic.Int32
	peers []net.Conn
}

func (f *fakeDials) dial(context.Context) (*upConn, error) {
	f.n.Add(1)
	a, b := net.Pipe()
	f.mu.Lock()
	f.peers = append(f.peers, b)
	f.mu.Unlock()
	return &upConn{nc: a}, nil
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting: %s", what)
}

// The pool never holds or dials more than its size, and each take starts
// at most one replacement.
func TestWarmPoolBounded(t *testing.T) {
	f := &fakeDials{}
	p := &warmPool{size: 3, maxAge: time.Minute, dial: f.dial}
	defer p.close()
	if up := p.take(); up != nil {
		t.Fatal("empty pool returned a connection")
	}
	waitUntil(t, "pool filled", func() bool { return p.len() == 3 })
	for i := range 5 {
		if up := p.take(); up == nil {
			t.Fatalf("take %d: nil from a filled pool", i)
		}
		waitUntil(t, "pool refilled", func() bool { return p.len() == 3 })
	}
	if n := f.n.Load(); n != 3+5 {
		t.Fatalf("dialed %d times, want 8 (3 to fill, one per take)", n)
	}
}

// Warm connections are closed after maxAge and not replaced: a quiet
// proxy holds no upstream connections.
func TestWarmPoolExpires(t *testing.T) {
	f := &fakeDials{}
	p := &warmPool{size: 2, maxAge: 50 * time.Millisecond, dial: f.dial}
	defer p.close()
	p.take()
	waitUntil(t, "pool emptied by age", func() bool { return f.n.Load() == 2 && p.len() == 0 })
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, peer := range f.peers {
		if _, err := peer.Read(make([]byte, 1)); err == nil {
			t.Fatal("expired connection still open")
		}
	}
	if n := f.n.Load(); n != 2 {
		t.Fatalf("dialed %d times after expiry, want 2", n)
	}
}

// close empties the pool and stops refills.
func TestWarmPoolClose(t *testing.T) {
	f := &fakeDials{}
	p := &warmPool{size: 2, maxAge: time.Minute, dial: f.dial}
	p.take()
	waitUntil(t, "pool filled", func() bool { return p.len() == 2 })
	p.close()
	if up := p.take(); up != nil || p.len() != 0 {
		t.Fatal("closed pool still hands out connections")
	}
}

// Clients that fail the app-password check never make the pool dial; a
// good login fills it and the next login uses a warm connection.
func TestWarmUpstreamLogin(t *testing.T) {
	e := newEnv(t, proxy.TLSImplicit, func(o *testOptions) { o.WarmUpstreams = 2 })
	bad := imapclient.New(e.dial(), nil)
	defer bad.Close()
	if err := bad.Login("ann@example.com", "wrong").Wait(); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	e.srv.warm.mu.Lock()
	idle := len(e.srv.warm.conns) == 0 && e.srv.warm.dialing == 0
	e.srv.warm.mu.Unlock()
	if !idle {
		t.Fatal("a failed login made the pool dial")
	}
	e.loginClient("ann@example.com", nil)
	waitUntil(t, "pool filled", func() bool { return e.srv.warm.len() == 2 })
	c := e.loginClient("bob@example.com", nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT on a warm upstream connection: %v", err)
	}
}

// A warm connection the upstream dropped is replaced by a new dial and the
// login still succeeds.
func TestWarmUpstreamDeadFallsBack(t *testing.T) {
	e := newEnv(t, proxy.TLSImplicit, func(o *testOptions) { o.WarmUpstreams = 1 })
	e.loginClient("ann@example.com", nil)
	waitUntil(t, "pool filled", func() bool { return e.srv.warm.len() == 1 })
	e.srv.warm.mu.Lock()
	for _, w := range e.srv.warm.conns {
		w.up.nc.Close()
	}
	e.srv.warm.mu.Unlock()
	c := e.loginClient("bob@example.com", nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT after falling back to a new dial: %v", err)
	}
}
