package devup

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"mailgate/proxy"
)

const (
	// pop3Idle is the autologout timer: RFC 1939 section 3 asks for at least
	// 10 minutes of inactivity.
	pop3Idle = 10 * time.Minute
	// pop3MaxLine bounds a command line. RFC 2449 section 4 allows 255 octets,
	// but a bearer token runs to a few kilobytes and clients send it as one
	// AUTH continuation line (RFC 5034 section 4 sets no limit there).
	pop3MaxLine = 64 << 10
)

func (s *POP3Server) serveConn(c net.Conn) {
	defer pop3Remove(s, s.conns, c)
	defer c.Close()
	pc := &pop3Conn{srv: s, c: c, r: bufio.NewReaderSize(c, pop3MaxLine), w: bufio.NewWriter(c)}
	_, pc.tls = c.(*tls.Conn)
	if err := pc.serve(); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		s.opts.Logger.Debug("devup pop3: connection ended", "proto", "pop3", "remote", c.RemoteAddr().String(), "err", err)
	}
}

// pop3Mechs are the SASL mechanisms offered, in CAPA and to a bare AUTH.
var pop3Mechs = []string{proxy.XOAUTH2, sasl.OAuthBearer}

// pop3Conn is one POP3 connection: the AUTHORIZATION state until a login,
// then TRANSACTION (RFC 1939 section 3).
type pop3Conn struct {
	srv  *POP3Server
	c    net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	tls  bool
	user string            // set by a successful AUTH
	msgs []*pop3Msg        // the maildrop as it was at login
	del  map[*pop3Msg]bool // marked by DELE, removed only at QUIT
}

// errPOP3Quit ends a connection after QUIT.
var errPOP3Quit = errors.New("quit")

func (pc *pop3Conn) serve() error {
	pc.reply("+OK devup POP3 ready")
	for {
		if err := pc.w.Flush(); err != nil {
			return err
		}
		line, err := pc.readLine()
		if err != nil {
			return err
		}
		if pc.user != "" {
			pc.srv.record(pc.user, line)
		}
		cmd, arg, _ := strings.Cut(line, " ")
		if err := pc.handle(strings.ToUpper(cmd), arg); err != nil {
			if errors.Is(err, errPOP3Quit) {
				return pc.w.Flush()
			}
			return err
		}
	}
}

func (pc *pop3Conn) reply(format string, args ...any) {
	fmt.Fprintf(pc.w, format+"\r\n", args...)
}

func (pc *pop3Conn) readLine() (string, error) {
	pc.c.SetReadDeadline(time.Now().Add(pop3Idle))
	b, err := pc.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		pc.reply("-ERR line too long")
		pc.w.Flush()
	}
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func (pc *pop3Conn) handle(cmd, arg string) error {
	switch cmd {
	case "CAPA":
		pc.handleCapa()
	case "QUIT":
		return pc.handleQuit()
	case "STLS":
		return pc.handleSTLS()
	case "AUTH":
		return pc.handleAuth(arg)
	default:
		if pc.user == "" {
			pc.handleAuthorization(cmd)
		} else {
			pc.handleTransaction(cmd, arg)
		}
	}
	return nil
}

// handleAuthorization answers what AUTHORIZATION allows besides AUTH: no
// USER/PASS or APOP, as Exchange Online and Gmail refuse passwords.
func (pc *pop3Conn) handleAuthorization(cmd string) {
	switch cmd {
	case "USER", "PASS", "APOP":
		pc.reply("-ERR [AUTH] Password logins are disabled, use OAuth2")
	default:
		pc.reply("-ERR Unknown command or not logged in")
	}
}

func (pc *pop3Conn) handleTransaction(cmd, arg string) {
	switch cmd {
	case "STAT":
		pc.handleStat()
	case "LIST":
		pc.handleList(arg, func(m *pop3Msg) string { return strconv.Itoa(len(m.data)) })
	case "UIDL":
		pc.handleList(arg, func(m *pop3Msg) string { return m.uid })
	case "RETR":
		pc.handleRetr(arg)
	case "TOP":
		pc.handleTop(arg)
	case "DELE":
		pc.handleDele(arg)
	case "NOOP":
		pc.reply("+OK")
	case "RSET":
		pc.del = make(map[*pop3Msg]bool)
		pc.reply("+OK")
	default:
		pc.reply("-ERR Unknown command")
	}
}

func (pc *pop3Conn) handleCapa() {
	pc.reply("+OK Capability list follows")
	pc.reply("TOP")
	pc.reply("UIDL")
	pc.reply("RESP-CODES")
	pc.reply("AUTH-RESP-CODE")
	if pc.user == "" && pc.tlsPending() {
		pc.reply("STLS")
	} else if pc.user == "" {
		pc.reply("SASL %s", strings.Join(pop3Mechs, " "))
	}
	pc.reply("IMPLEMENTATION devup")
	pc.reply(".")
}

// tlsPending reports whether this is an STLS listener still in plaintext.
func (pc *pop3Conn) tlsPending() bool {
	return pc.srv.opts.TLSConfig != nil && !pc.tls
}

// handleQuit enters the UPDATE state (RFC 1939 section 6): only here are
// the marked messages removed.
func (pc *pop3Conn) handleQuit() error {
	if pc.user != "" {
		pc.srv.expunge(pc.user, pc.del)
	}
	pc.reply("+OK Bye")
	return errPOP3Quit
}

// handleSTLS switches to TLS (RFC 2595 section 4). The reader is reset, so
// bytes the client sent before the handshake are never read as commands.
func (pc *pop3Conn) handleSTLS() error {
	if pc.user != "" || !pc.srv.opts.StartTLS || !pc.tlsPending() {
		pc.reply("-ERR STLS not available")
		return nil
	}
	pc.reply("+OK Begin TLS negotiation")
	if err := pc.w.Flush(); err != nil {
		return err
	}
	tc := tls.Server(pc.c, pc.srv.opts.TLSConfig)
	tc.SetDeadline(time.Now().Add(pop3Idle))
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("stls: %w", err)
	}
	tc.SetDeadline(time.Time{})
	pc.c, pc.tls = tc, true
	pc.r.Reset(tc)
	pc.w.Reset(tc)
	return nil
}

// handleAuth runs AUTH (RFC 5034) for XOAUTH2 and OAUTHBEARER, with the
// initial response inline or after an empty "+ " continuation. A refused
// token gets the mechanism's error challenge first, as Gmail and Exchange
// Online send it; whatever the client answers, the login then fails.
func (pc *pop3Conn) handleAuth(arg string) error {
	if pc.user != "" {
		pc.reply("-ERR Already logged in")
		return nil
	}
	if pc.tlsPending() {
		pc.reply("-ERR Use STLS first")
		return nil
	}
	mech, ir, hasIR := strings.Cut(arg, " ")
	if mech == "" {
		pc.reply("+OK")
		for _, m := range pop3Mechs {
			pc.reply("%s", m)
		}
		pc.reply(".")
		return nil
	}
	var user string
	srv := pop3SASLServer(strings.ToUpper(mech), func(u, token string) error {
		if err := pc.srv.opts.Verify(u, token); err != nil || u == "" {
			pc.srv.opts.Logger.Info("devup pop3: token refused", "proto", "pop3", "user", u, "err", err)
			return errors.New("token refused")
		}
		user = u
		return nil
	})
	if srv == nil {
		pc.reply("-ERR Unsupported mechanism")
		return nil
	}
	resp, err := pc.saslResponse(ir, hasIR)
	if resp == nil || err != nil {
		return err
	}
	ch, done, err := srv.Next(resp)
	if err == nil && !done {
		pc.reply("+ %s", base64.StdEncoding.EncodeToString(ch))
		if err := pc.w.Flush(); err != nil {
			return err
		}
		if _, err := pc.readLine(); err != nil {
			return err
		}
	}
	if err != nil || !done || user == "" {
		pc.reply("-ERR [AUTH] Authentication failed")
		return nil
	}
	pc.user, pc.msgs, pc.del = user, pc.srv.login(user), make(map[*pop3Msg]bool)
	pc.reply("+OK Logged in")
	return nil
}

// pop3SASLServer returns the SASL server for mech, or nil.
func pop3SASLServer(mech string, verify XOAUTH2Verifier) sasl.Server {
	switch mech {
	case proxy.XOAUTH2:
		return NewXOAUTH2Server(verify)
	case sasl.OAuthBearer:
		return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			if verify(o.Username, o.Token) != nil {
				return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
			}
			return nil
		})
	}
	return nil
}

// saslResponse returns the client's initial response: inline ("=" is an
// empty one) or asked for with "+ ". Nil with a nil error means the reply
// was sent already (cancelled with "*" or not base64).
func (pc *pop3Conn) saslResponse(ir string, hasIR bool) ([]byte, error) {
	if !hasIR {
		pc.reply("+ ")
		if err := pc.w.Flush(); err != nil {
			return nil, err
		}
		line, err := pc.readLine()
		if err != nil {
			return nil, err
		}
		if line == "*" {
			pc.reply("-ERR Authentication cancelled")
			return nil, nil
		}
		ir = line
	} else if ir == "=" {
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(ir)
	if err != nil {
		pc.reply("-ERR Invalid base64")
		return nil, nil
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// message returns the message numbered arg, or replies -ERR.
func (pc *pop3Conn) message(arg string) (*pop3Msg, int, bool) {
	n, err := strconv.Atoi(arg)
	if err != nil || n < 1 || n > len(pc.msgs) || pc.del[pc.msgs[n-1]] {
		pc.reply("-ERR No such message")
		return nil, 0, false
	}
	return pc.msgs[n-1], n, true
}

func (pc *pop3Conn) handleStat() {
	n, size := 0, 0
	for _, m := range pc.msgs {
		if !pc.del[m] {
			n, size = n+1, size+len(m.data)
		}
	}
	pc.reply("+OK %d %d", n, size)
}

// handleList serves LIST and UIDL, which differ only in the field shown.
func (pc *pop3Conn) handleList(arg string, field func(*pop3Msg) string) {
	if arg != "" {
		if m, n, ok := pc.message(arg); ok {
			pc.reply("+OK %d %s", n, field(m))
		}
		return
	}
	pc.reply("+OK")
	for i, m := range pc.msgs {
		if !pc.del[m] {
			pc.reply("%d %s", i+1, field(m))
		}
	}
	pc.reply(".")
}

func (pc *pop3Conn) handleRetr(arg string) {
	if m, _, ok := pc.message(arg); ok {
		pc.reply("+OK %d octets", len(m.data))
		pc.writeDotStuffed(m.data)
		pc.reply(".")
	}
}

// handleTop sends the header, the blank line and the first n body lines
// (RFC 1939 section 7).
func (pc *pop3Conn) handleTop(arg string) {
	num, lines, _ := strings.Cut(arg, " ")
	n, err := strconv.Atoi(lines)
	if err != nil || n < 0 {
		pc.reply("-ERR Syntax: TOP msg n")
		return
	}
	m, _, ok := pc.message(num)
	if !ok {
		return
	}
	out := m.data
	if i := bytes.Index(out, []byte("\r\n\r\n")); i >= 0 {
		end := i + 4
		for ; n > 0 && end < len(out); n-- {
			j := bytes.IndexByte(out[end:], '\n')
			end += j + 1 // messages end with CRLF, so j >= 0
		}
		out = out[:end]
	}
	pc.reply("+OK")
	pc.writeDotStuffed(out)
	pc.reply(".")
}

func (pc *pop3Conn) handleDele(arg string) {
	if m, _, ok := pc.message(arg); ok {
		pc.del[m] = true
		pc.reply("+OK Marked")
	}
}

// writeDotStuffed writes CRLF-terminated lines, doubling a leading dot
// (RFC 1939 section 3).
func (pc *pop3Conn) writeDotStuffed(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n') + 1
		if i == 0 {
			i = len(b)
		}
		if b[0] == '.' {
			pc.w.WriteByte('.')
		}
		pc.w.Write(b[:i])
		b = b[i:]
	}
}
