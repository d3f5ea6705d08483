package pop3

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"mailgate/internal/proxytest"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeUp is a small POP3 upstream that behaves like Exchange Online at
// login: AUTH XOAUTH2 or OAUTHBEARER only, the initial response only after
// the "+ " continuation (an inline one is refused), an error challenge
// before a refusal. It serves one mailbox and records every line it
// receives, so tests can check what the proxy sent.
type fakeUp struct {
	t    *testing.T
	addr string

	mu     sync.Mutex
	policy string // "", "refuse-first" (only tok1 is bad), "refuse-always", "down"
	// hold, when set, makes AUTH wait for it to be closed after the
	// initial response; entered gets a value when one starts waiting.
	hold, entered chan struct{}
	lines         []string    // received, in order, over all connections
	tokens        []string    // presented, in order
	msgs          [][]byte    // the mailbox, as sent by RETR (dot-stuffed, no final ".")
	quits         int         // QUIT commands received
	closed        chan error  // gets the end of each connection
	stls          *tls.Config // offers STLS with it when set
}

// newFakeUp starts a fakeUp with implicit TLS (cfg) or none (nil).
func newFakeUp(t *testing.T, cfg *tls.Config) *fakeUp {
	t.Helper()
	ln := proxytest.Listen(t)
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	return startFakeUp(t, ln, nil)
}

// newSTLSUpstream starts a fakeUp that is reached in clear and offers STLS
// (RFC 2595 section 4).
func newSTLSUpstream(t *testing.T, cfg *tls.Config) *fakeUp {
	t.Helper()
	return startFakeUp(t, proxytest.Listen(t), cfg)
}

func startFakeUp(t *testing.T, ln net.Listener, stls *tls.Config) *fakeUp {
	f := &fakeUp{t: t, addr: ln.Addr().String(), closed: make(chan error, 16), stls: stls}
	var wg sync.WaitGroup
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				f.serve(nc)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return f
}

func (f *fakeUp) set(policy string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.policy = policy
}

// add appends a message; RETR sends it dot-stuffed (RFC 1939 section 3).
func (f *fakeUp) add(msg []byte) {
	var b bytes.Buffer
	for _, l := range bytes.SplitAfter(msg, []byte("\r\n")) {
		if bytes.HasPrefix(l, []byte(".")) {
			b.WriteByte('.')
		}
		b.Write(l)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, b.Bytes())
}

func (f *fakeUp) record(line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lines = append(f.lines, line)
}

func (f *fakeUp) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

func (f *fakeUp) count() (msgs, quits int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.msgs), f.quits
}

// fakeSession is one connection's state.
type fakeSession struct {
	f      *fakeUp
	nc     net.Conn
	br     *bufio.Reader
	authed bool
	dele   map[int]bool
}

func (f *fakeUp) serve(nc net.Conn) {
	s := &fakeSession{f: f, nc: nc, br: bufio.NewReader(nc), dele: map[int]bool{}}
	s.reply("+OK fake POP3 ready")
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			f.ended(err)
			return
		}
		line = strings.TrimRight(line, "\r\n")
		f.record(line)
		name, arg, _ := strings.Cut(line, " ")
		if !s.command(strings.ToUpper(name), arg) {
			f.ended(nil)
			return
		}
	}
}

// ended reports a connection's end to a test waiting on closed.
func (f *fakeUp) ended(err error) {
	select {
	case f.closed <- err:
	default:
	}
}

func (s *fakeSession) reply(format string, args ...any) {
	fmt.Fprintf(s.nc, format+"\r\n", args...)
}

// command runs one command and reports whether the connection goes on.
func (s *fakeSession) command(name, arg string) bool {
	switch {
	case name == "STLS" && s.f.stls != nil && !s.authed:
		s.reply("+OK Begin TLS")
		tc := tls.Server(s.nc, s.f.stls)
		if tc.Handshake() != nil {
			return false
		}
		s.nc, s.br = tc, bufio.NewReader(tc)
	case name == "AUTH" && !s.authed:
		s.auth(arg)
	case name == "QUIT":
		s.quit()
		return false
	case !s.authed:
		s.reply("-ERR not logged in")
	case name == "STAT":
		s.f.mu.Lock()
		n, size := 0, 0
		for i, m := range s.f.msgs {
			if !s.dele[i+1] {
				n, size = n+1, size+len(m)
			}
		}
		s.f.mu.Unlock()
		s.reply("+OK %d %d", n, size)
	case name == "RETR":
		s.retr(arg)
	case name == "DELE":
		i, _ := strconv.Atoi(arg)
		s.dele[i] = true
		s.reply("+OK message %d deleted", i)
	default:
		s.reply("-ERR unknown command")
	}
	return true
}

func (s *fakeSession) retr(arg string) {
	i, _ := strconv.Atoi(arg)
	s.f.mu.Lock()
	if i < 1 || i > len(s.f.msgs) || s.dele[i] {
		s.f.mu.Unlock()
		s.reply("-ERR no such message")
		return
	}
	m := s.f.msgs[i-1]
	s.f.mu.Unlock()
	s.reply("+OK %d octets", len(m))
	s.nc.Write(m)
	s.reply(".")
}

// quit commits the deletions (RFC 1939 section 6), only after login.
func (s *fakeSession) quit() {
	s.f.mu.Lock()
	s.f.quits++
	if s.authed {
		var keep [][]byte
		for i, m := range s.f.msgs {
			if !s.dele[i+1] {
				keep = append(keep, m)
			}
		}
		s.f.msgs = keep
	}
	s.f.mu.Unlock()
	s.reply("+OK bye")
}

// auth runs AUTH XOAUTH2 or OAUTHBEARER the way Exchange Online does.
func (s *fakeSession) auth(arg string) {
	mech, _, inline := strings.Cut(arg, " ")
	if inline || (mech != "XOAUTH2" && mech != "OAUTHBEARER") {
		s.reply("-ERR Protocol error")
		return
	}
	s.reply("+ ")
	line, err := s.br.ReadString('\n')
	if err != nil {
		return
	}
	line = strings.TrimRight(line, "\r\n")
	s.f.record(line)
	resp, _ := base64.StdEncoding.DecodeString(line)
	_, rest, _ := strings.Cut(string(resp), "auth=Bearer ")
	token, _, _ := strings.Cut(rest, "\x01")
	s.f.mu.Lock()
	s.f.tokens = append(s.f.tokens, token)
	policy, hold, entered := s.f.policy, s.f.hold, s.f.entered
	s.f.mu.Unlock()
	if hold != nil {
		entered <- struct{}{}
		<-hold
	}
	switch {
	case policy == "down":
		s.reply("-ERR [SYS/TEMP] Server Unavailable")
	case policy == "refuse-always", policy == "refuse-first" && token == "tok1":
		s.reply("+ %s", base64.StdEncoding.EncodeToString([]byte(`{"status":"401","schemes":"bearer"}`)))
		if l, err := s.br.ReadString('\n'); err == nil {
			s.f.record(strings.TrimRight(l, "\r\n"))
		}
		s.reply("-ERR [AUTH] Authentication failure: unknown user name or bad password.")
	default:
		s.authed = true
		s.reply("+OK User successfully authenticated.")
	}
}
