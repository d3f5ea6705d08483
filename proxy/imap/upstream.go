package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/emersion/go-sasl"

	"mailgate/proxy"
)

// Upstream limits: a response line and a literal inside one. The upstream is
// trusted more than a client, but a broken one must not exhaust memory.
const (
	upMaxLine    = 64 << 10
	upMaxLiteral = 1 << 20
)

var (
	// errNotConnected: the upstream took the token but cannot reach the mailbox
	// (docs/clients.md, "Authenticated but not connected": "User is
	// authenticated but not connected").
	errNotConnected = fmt.Errorf("upstream mailbox probe failed: %w", proxy.ErrAuthFailed)
	// errUpstreamDown: the upstream answered NO [UNAVAILABLE] (RFC 5530
	// section 3), as Gmail does with "Temporary System Problem" and Dovecot
	// when it cannot reach the token introspection endpoint. The token is
	// not at fault: it is kept and the client is told to try later.
	errUpstreamDown = fmt.Errorf("upstream temporarily unavailable: %w", proxy.ErrUnavailable)
	// errUpstreamProto covers everything else an upstream can do wrong.
	errUpstreamProto = fmt.Errorf("upstream protocol error: %w", proxy.ErrUnavailable)
)

// upConn is an upstream IMAP connection during login.
type upConn struct {
	nc   net.Conn
	br   *bufio.Reader
	tag  int
	caps []string // the latest capability list seen
}

// close closes the upstream connection, for a login that is given up.
func (up *upConn) close() { up.nc.Close() }

// response is the end of one upstream command.
type response struct {
	cont   bool   // a "+" continuation request
	status string // OK, NO or BAD
	text   string // after the status, or the continuation's base64
}

// openUpstream logs in to the upstream for mailbox, with one retry on a fresh
// token when the upstream refuses the cached one (docs/clients.md, "Exchange
// Online ends sessions when the token expires"). When ctx ends (the session was
// revoked, the deadline passed) the upstream connection is closed and the login
// fails.
func (s *Server) openUpstream(ctx context.Context, mailbox string) (*upConn, error) {
	return proxy.LoginWithToken(ctx, s.opts.Tokens, mailbox, func(token string) (*upConn, error) {
		up, err := s.tryUpstream(ctx, mailbox, token)
		if errors.Is(err, proxy.ErrTokenRefused) {
			s.log.Info("upstream refused token", "user", mailbox, "upstream", s.opts.Upstream.Address)
		}
		return up, err
	})
}

// tryUpstream authenticates with token on a warm connection or a new one
// and probes the mailbox. A warm connection that fails other than by
// refusing the token (the upstream dropped it) is replaced by a new one.
func (s *Server) tryUpstream(ctx context.Context, mailbox, token string) (*upConn, error) {
	u := &s.opts.Upstream
	if up := s.warm.take(); up != nil {
		up.nc.SetDeadline(proxy.LoginDeadline(ctx))
		err := loginOn(ctx, up, u, mailbox, token)
		if err == nil {
			return up, nil
		}
		if !errors.Is(err, proxy.ErrUnavailable) {
			return nil, err
		}
		s.log.Debug("warm upstream connection failed, dialing", "upstream", u.Address, "err", err)
	}
	return loginUpstream(ctx, u, mailbox, token)
}

// loginUpstream dials u, authenticates as mailbox with token and probes the
// mailbox; it is shared by the proxy and CheckLogin.
func loginUpstream(ctx context.Context, u *proxy.Upstream, mailbox, token string) (*upConn, error) {
	up, err := dialUpstream(ctx, u)
	if err != nil {
		return nil, err
	}
	if err := loginOn(ctx, up, u, mailbox, token); err != nil {
		return nil, err
	}
	return up, nil
}

// loginOn logs in on up; on failure, or when ctx ends first, it closes up.
func loginOn(ctx context.Context, up *upConn, u *proxy.Upstream, mailbox, token string) error {
	return proxy.LoginOn(ctx, up.nc, func() error { return up.login(u.SASLClient(mailbox, token)) })
}

// dialUpstream connects, reads the greeting and does STARTTLS if configured.
func dialUpstream(ctx context.Context, u *proxy.Upstream) (*upConn, error) {
	nc, err := u.DialLogin(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	up := &upConn{nc: nc, br: bufio.NewReader(nc)}
	if err := up.greeting(); err != nil {
		nc.Close()
		return nil, err
	}
	if u.TLS == proxy.TLSStartTLS {
		if err := up.startTLS(u.ClientTLS()); err != nil {
			nc.Close()
			return nil, err
		}
	}
	return up, nil
}

func (up *upConn) greeting() error {
	line, err := up.readLine()
	if err != nil {
		return fmt.Errorf("upstream greeting: %w: %w", proxy.ErrUnavailable, err)
	}
	status, text := splitStatus(strings.TrimPrefix(line, "* "))
	if !strings.HasPrefix(line, "* ") || status != "OK" {
		return fmt.Errorf("upstream greeting %q: %w", line, errUpstreamProto)
	}
	up.caps = capCode(text)
	return nil
}

// startTLS upgrades the upstream connection; capabilities seen before TLS
// are forgotten (RFC 3501 section 6.2.1).
func (up *upConn) startTLS(cfg *tls.Config) error {
	r, err := up.command("STARTTLS")
	if err != nil {
		return err
	}
	if r.status != "OK" {
		return fmt.Errorf("upstream STARTTLS: %s %s: %w", r.status, r.text, errUpstreamProto)
	}
	tc := tls.Client(up.nc, cfg)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("upstream starttls handshake: %w: %w", proxy.ErrUnavailable, err)
	}
	up.nc, up.br, up.caps = tc, bufio.NewReader(tc), nil
	return nil
}

// login authenticates, probes the mailbox and makes sure up.caps holds the
// post-login capabilities.
func (up *upConn) login(cl sasl.Client) error {
	if up.caps == nil {
		if err := up.capability(); err != nil {
			return err
		}
	}
	if err := up.authenticate(cl); err != nil {
		return err
	}
	// Field note 12: a mailbox-touching command that selects nothing.
	r, err := up.command(`STATUS INBOX (MESSAGES)`)
	if err != nil {
		return err
	}
	if r.status != "OK" && unavailable(r.text) {
		return fmt.Errorf("STATUS INBOX: %s %s: %w", r.status, r.text, errUpstreamDown)
	}
	if r.status != "OK" {
		return fmt.Errorf("STATUS INBOX: %s %s: %w", r.status, r.text, errNotConnected)
	}
	if up.caps == nil {
		return up.capability()
	}
	return nil
}

func (up *upConn) capability() error {
	r, err := up.command("CAPABILITY")
	if err != nil {
		return err
	}
	if r.status != "OK" || up.caps == nil {
		return fmt.Errorf("upstream CAPABILITY: %s %s: %w", r.status, r.text, errUpstreamProto)
	}
	return nil
}

// authenticate runs the SASL exchange. The initial response goes on the command
// line when the upstream has SASL-IR (RFC 4959), else after the first "+". An
// error challenge (Gmail's base64 JSON, docs/clients.md, "XOAUTH2 and its error
// challenge") is answered as the mechanism says and never reaches the client.
func (up *upConn) authenticate(cl sasl.Client) error {
	mech, ir, err := cl.Start()
	if err != nil {
		return fmt.Errorf("sasl start: %w: %w", proxy.ErrUnavailable, err)
	}
	line := "AUTHENTICATE " + mech
	irSent := up.has("SASL-IR")
	if irSent && len(ir) == 0 {
		line += " =" // RFC 4959: an empty initial response
	} else if irSent {
		line += " " + encodeSASL(ir)
	}
	tag := up.send(line)
	up.caps = nil // what we knew was the pre-auth list
	for {
		r, err := up.read(tag)
		if err != nil {
			return err
		}
		switch {
		case !r.cont && r.status == "OK":
			return nil
		case !r.cont && unavailable(r.text):
			return fmt.Errorf("AUTHENTICATE %s: %s %s: %w", mech, r.status, r.text, errUpstreamDown)
		case !r.cont:
			return fmt.Errorf("AUTHENTICATE %s: %s %s: %w", mech, r.status, r.text, proxy.ErrTokenRefused)
		case !irSent:
			irSent = true
			err = up.writeLine(encodeSASL(ir))
		default:
			err = up.writeLine(encodeSASL(proxy.AnswerChallenge(cl, r.text)))
		}
		if err != nil {
			return err
		}
	}
}

// encodeSASL encodes a response; an empty one is an empty line, as Gmail
// expects after its error challenge (the XOAUTH2 protocol document).
func encodeSASL(b []byte) string {
	return base64.StdEncoding.EncodeToString(b)
}

// unavailable reports whether a response text starts with the UNAVAILABLE
// response code (RFC 5530 section 3).
func unavailable(text string) bool {
	return len(text) >= 13 && strings.EqualFold(text[:13], "[UNAVAILABLE]")
}

func (up *upConn) has(capName string) bool {
	for _, c := range up.caps {
		if strings.EqualFold(c, capName) {
			return true
		}
	}
	return false
}

// send writes a command with the next tag of our own (m1, m2, ...).
func (up *upConn) send(line string) string {
	up.tag++
	tag := "m" + strconv.Itoa(up.tag)
	up.writeLine(tag + " " + line) // a write error shows up at the read
	return tag
}

func (up *upConn) writeLine(line string) error {
	_, err := io.WriteString(up.nc, line+"\r\n")
	if err != nil {
		return fmt.Errorf("write upstream: %w: %w", proxy.ErrUnavailable, err)
	}
	return nil
}

// command sends line and reads up to its tagged response.
func (up *upConn) command(line string) (*response, error) {
	tag := up.send(line)
	r, err := up.read(tag)
	if err == nil && r.cont {
		return nil, fmt.Errorf("unexpected continuation after %q: %w", line, errUpstreamProto)
	}
	return r, err
}
