package devup

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
)

// POP3Options configures the in-process POP3 upstream.
type POP3Options struct {
	// Verify checks the bearer token of an XOAUTH2 or OAUTHBEARER login.
	// Nil accepts every token.
	Verify XOAUTH2Verifier
	// TLSConfig turns TLS on: implicit TLS from the first byte, or STLS
	// (RFC 2595) when StartTLS is set, which AUTH then requires. Nil serves
	// plaintext (loopback tests only).
	TLSConfig *tls.Config
	StartTLS  bool
	// Logger receives the server's messages; nil means slog.Default.
	Logger *slog.Logger
}

// POP3Server is a small RFC 1939 server that, like Exchange Online and
// Gmail, accepts only OAuth2 bearer tokens (AUTH XOAUTH2 and OAUTHBEARER,
// RFC 5034); there is no USER/PASS. Maildrops are created on demand and are
// not locked: like Dovecot (pop3_lock_session = no), concurrent sessions of
// one mailbox are allowed and each sees the messages present at its login.
type POP3Server struct {
	opts POP3Options

	mu     sync.Mutex
	boxes  map[string][]*pop3Msg // by lower-case mailbox
	cmds   map[string][]string
	logins int
	uid    int
	lns    map[net.Listener]struct{}
	conns  map[net.Conn]struct{}
	closed bool
}

var _ Deliverer = (*POP3Server)(nil)

// pop3Msg is one message, stored with CRLF line ends so that its size is
// the octet count RFC 1939 section 5 (LIST) reports.
type pop3Msg struct {
	uid  string
	data []byte
}

// NewPOP3 returns a POP3 upstream; call Serve to start it.
func NewPOP3(opts *POP3Options) *POP3Server {
	s := &POP3Server{
		opts:  *opts,
		boxes: make(map[string][]*pop3Msg),
		cmds:  make(map[string][]string),
		lns:   make(map[net.Listener]struct{}),
		conns: make(map[net.Conn]struct{}),
	}
	if s.opts.Logger == nil {
		s.opts.Logger = slog.Default()
	}
	if s.opts.Verify == nil {
		s.opts.Verify = func(user, token string) error { return nil }
	}
	return s
}

// Serve accepts POP3 connections on ln until Close; it then returns nil.
func (s *POP3Server) Serve(ln net.Listener) error {
	if s.opts.TLSConfig != nil && !s.opts.StartTLS {
		ln = tls.NewListener(ln, s.opts.TLSConfig)
	}
	if !pop3Add(s, s.lns, ln) {
		ln.Close()
		return nil
	}
	defer pop3Remove(s, s.lns, ln)
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			return err
		}
		if !pop3Add(s, s.conns, c) {
			c.Close()
			return nil
		}
		go s.serveConn(c)
	}
}

// Close closes the listeners and every connection at once. Sessions closed
// this way never reach the UPDATE state, so they delete nothing.
func (s *POP3Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	return nil
}

// Deliver adds msg to mailbox's maildrop, creating it if needed. Bare LF
// line ends become CRLF and a missing final line end is added, as a
// maildrop stores them.
func (s *POP3Server) Deliver(mailbox string, msg io.Reader) error {
	b, err := io.ReadAll(msg)
	if err != nil {
		return fmt.Errorf("deliver to %s: %w", mailbox, err)
	}
	b = bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	if len(b) > 0 && !bytes.HasSuffix(b, []byte("\r\n")) {
		b = append(b, '\r', '\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uid++
	key := strings.ToLower(mailbox)
	s.boxes[key] = append(s.boxes[key], &pop3Msg{uid: fmt.Sprintf("devup-%d", s.uid), data: b})
	return nil
}

// Messages returns the messages in mailbox's maildrop, as stored (CRLF).
func (s *POP3Server) Messages(mailbox string) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for _, m := range s.boxes[strings.ToLower(mailbox)] {
		out = append(out, bytes.Clone(m.data))
	}
	return out
}

// Commands returns the command lines that sessions logged in as mailbox
// sent after their login, in order, without line ends. Tests use it to see
// whether QUIT reached the upstream.
func (s *POP3Server) Commands(mailbox string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.cmds[strings.ToLower(mailbox)]...)
}

// Logins returns the number of successful logins so far.
func (s *POP3Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// pop3Add puts k into set unless the server is closed.
func pop3Add[K comparable](s *POP3Server, set map[K]struct{}, k K) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	set[k] = struct{}{}
	return true
}

func pop3Remove[K comparable](s *POP3Server, set map[K]struct{}, k K) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(set, k)
}

func (s *POP3Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// login records a successful login and returns the session's snapshot of
// the maildrop.
func (s *POP3Server) login(mailbox string) []*pop3Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logins++
	return append([]*pop3Msg(nil), s.boxes[strings.ToLower(mailbox)]...)
}

func (s *POP3Server) record(mailbox, line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(mailbox)
	s.cmds[key] = append(s.cmds[key], line)
}

// expunge removes the given messages from mailbox: the UPDATE state
// (RFC 1939 section 6), reached only by QUIT after a login.
func (s *POP3Server) expunge(mailbox string, del map[*pop3Msg]bool) {
	if len(del) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(mailbox)
	var keep []*pop3Msg
	for _, m := range s.boxes[key] {
		if !del[m] {
			keep = append(keep, m)
		}
	}
	s.boxes[key] = keep
}
