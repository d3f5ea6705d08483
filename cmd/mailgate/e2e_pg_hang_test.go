package main

import (
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// stall is a TCP forwarder to PostgreSQL that can stop answering without
// closing anything, as a database host that hangs or a network that drops
// packets does: then every connection, old and new, stays open and silent.
type stall struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	hung   bool
	conns  []net.Conn // every connection, closed at the end
	pairs  []*pair    // forwarding now
}

type pair struct{ client, server net.Conn }

func newStall(t *testing.T, target string) *stall {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stall{ln: ln, target: target}
	go s.serve()
	t.Cleanup(s.close)
	return s
}

func (s *stall) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		hung := s.hung
		s.mu.Unlock()
		if !hung {
			go s.forward(c)
		}
	}
}

func (s *stall) forward(c net.Conn) {
	up, err := net.Dial("tcp", s.target)
	if err != nil {
		c.Close()
		return
	}
	p := &pair{client: c, server: up}
	s.mu.Lock()
	s.pairs = append(s.pairs, p)
	s.mu.Unlock()
	go s.copy(up, c)
	s.copy(c, up)
}

// copy copies until either side fails; the client is closed only while
// not hung, so that a hang is silence and never a reset.
func (s *stall) copy(dst, src net.Conn) {
	io.Copy(dst, src)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hung {
		dst.Close()
		src.Close()
	}
}

// hang makes every connection silent: the server sides are cut, the
// clients are left open and hear nothing more.
func (s *stall) hang() {
	s.mu.Lock()
	s.hung = true
	pairs := s.pairs
	s.pairs = nil
	s.mu.Unlock()
	for _, p := range pairs {
		p.server.Close()
	}
}

// heal forwards new connections again; the silent ones stay silent, as
// TCP connections across a healed partition do, until the clients give up.
func (s *stall) heal() {
	s.mu.Lock()
	s.hung = false
	s.mu.Unlock()
}

func (s *stall) close() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	for _, p := range s.pairs {
		p.server.Close()
	}
}

// via makes pg's DSN and DSN file name addr instead of the cluster.
func (p *e2ePG) via(t *testing.T, port int, addr string) {
	t.Helper()
	p.dsn = strings.Replace(p.dsn, "127.0.0.1:"+strconv.Itoa(port), addr, 1)
	if err := os.WriteFile(p.dsnFile, []byte(p.dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// databaseHangs: the database stops answering (no refusal, no reset)
// under a daemon with a live IMAP session. The session goes on; a new
// login gets NO [UNAVAILABLE] within the store's query bound (logged as
// measured); once the database answers again logins work without a
// restart, and a revoke by the CLI straight on the database ends the
// session through the daemon's change feed.
func databaseHangs(t *testing.T, env *pgEnv) {
	pg := env.database(t)
	st := newStall(t, "127.0.0.1:"+strconv.Itoa(env.ctl.Port()))
	pg.via(t, env.ctl.Port(), st.ln.Addr().String())
	e := env.instancesOn(t, pg, 1)[0]
	const user = "hang@example.com"
	e.mustLink(user)
	pass, id := e.appPassword(user)
	live := e.loginIMAP(user, pass, nil)

	st.hang()
	start := time.Now()
	if code := e.imapLoginCode(user, pass); code != "UNAVAILABLE" {
		t.Fatalf("login with the database hanging: %q, want UNAVAILABLE", code)
	}
	t.Logf("login refused UNAVAILABLE %v after the database stopped answering", time.Since(start).Round(time.Millisecond))
	if err := live.Noop().Wait(); err != nil {
		t.Fatalf("live session with the database hanging: %v", err)
	}
	st.heal()
	t.Logf("logins work again %v after the database answered again", pollLogin(t, e, user, pass).Round(time.Millisecond))
	// Straight on the database: only the daemon's change feed, whose
	// connection hung too, can end the session.
	e.cliDirect("password", "revoke", user, id)
	took := waitEnded(t, live, time.Now(), "revoke by the CLI after the hang")
	t.Logf("a revoke by the CLI on the database ended the session %v later", took.Round(time.Millisecond))
}
