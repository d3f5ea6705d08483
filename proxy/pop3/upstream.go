package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/emersion/go-sasl"

	"mailgate/proxy"
)

const (
	// upMaxLine bounds an upstream response line before login. The
	// upstream is trusted more than a client, but a broken one must not
	// exhaust memory.
	upMaxLine = 64 << 10
)

var (
	// errUpstreamDown: the upstream answered -ERR [SYS/TEMP] or [IN-USE]
	// (RFC 3206 section 4, RFC 2449 section 8.1.1): the token is not at
	// fault, it is kept and the client is told to try later.
	errUpstreamDown = fmt.Errorf("upstream temporarily unavailable: %w", proxy.ErrUnavailable)
	// errUpstreamProto covers everything else an upstream can do wrong.
	errUpstreamProto = fmt.Errorf("upstream protocol error: %w", proxy.ErrUnavailable)
)

// upConn is an upstream POP3 connection during login.
type upConn struct {
	nc net.Conn
	br *bufio.Reader
}

// close closes the upstream connection, for a login that is given up.
func (up *upConn) close() { up.nc.Close() }

// openUpstream logs in to the upstream for mailbox, with one retry on a
// fresh token when the upstream refuses the cached one. When ctx ends (the
// session was revoked, the deadline passed) the upstream connection is
// closed and the login fails.
func (s *Server) openUpstream(ctx context.Context, mailbox string) (*upConn, error) {
	u := &s.opts.Upstream
	return proxy.LoginWithToken(ctx, s.opts.Tokens, mailbox, func(token string) (*upConn, error) {
		up, err := loginUpstream(ctx, u, mailbox, token)
		if errors.Is(err, proxy.ErrTokenRefused) {
			s.log.Info("upstream refused token", "user", mailbox, "upstream", u.Address)
		}
		return up, err
	})
}

// loginUpstream dials u and authenticates as mailbox with token; on
// failure, or when ctx ends first, it closes the connection.
func loginUpstream(ctx context.Context, u *proxy.Upstream, mailbox, token string) (*upConn, error) {
	up, err := dialUpstream(ctx, u)
	if err != nil {
		return nil, err
	}
	login := func() error { return up.authenticate(u.SASLClient(mailbox, token)) }
	if err := proxy.LoginOn(ctx, up.nc, login); err != nil {
		return nil, err
	}
	return up, nil
}

// dialUpstream connects, reads the greeting and does STLS if configured.
func dialUpstream(ctx context.Context, u *proxy.Upstream) (*upConn, error) {
	nc, err := u.DialLogin(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	up := &upConn{nc: nc, br: bufio.NewReader(nc)}
	err = up.greeting()
	if err == nil && u.TLS == proxy.TLSStartTLS {
		err = up.startTLS(u.ClientTLS())
	}
	if err != nil {
		up.nc.Close()
		return nil, err
	}
	return up, nil
}

func (up *upConn) greeting() error {
	line, err := up.readLine()
	if err != nil {
		return err
	}
	if !isOK(line) {
		return fmt.Errorf("upstream greeting %q: %w", line, errUpstreamProto)
	}
	return nil
}

// startTLS upgrades the upstream connection (RFC 2595 section 4); the
// server sends no new greeting.
func (up *upConn) startTLS(cfg *tls.Config) error {
	if err := up.writeLine("STLS"); err != nil {
		return err
	}
	line, err := up.readLine()
	if err != nil {
		return err
	}
	if !isOK(line) {
		return fmt.Errorf("upstream STLS: %q: %w", line, errUpstreamProto)
	}
	tc := tls.Client(up.nc, cfg)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("upstream stls handshake: %w: %w", proxy.ErrUnavailable, err)
	}
	up.nc, up.br = tc, bufio.NewReader(tc)
	return nil
}

// authenticate runs AUTH (RFC 5034). The initial response always follows
// the first "+" continuation rather than the command line: Exchange Online
// takes XOAUTH2 only that way, and every server must accept it (RFC 5034
// section 4). An error challenge (Gmail's and Dovecot's base64 JSON) is
// answered as the mechanism says and never reaches the client.
func (up *upConn) authenticate(cl sasl.Client) error {
	mech, ir, err := cl.Start()
	if err != nil {
		return fmt.Errorf("sasl start: %w: %w", proxy.ErrUnavailable, err)
	}
	if err := up.writeLine("AUTH " + mech); err != nil {
		return err
	}
	for irSent := false; ; irSent = true {
		line, err := up.readLine()
		if err != nil {
			return err
		}
		switch {
		case isOK(line):
			return nil
		case isErr(line) && temporary(line[len("-ERR"):]):
			return fmt.Errorf("AUTH %s: %q: %w", mech, line, errUpstreamDown)
		case isErr(line):
			return fmt.Errorf("AUTH %s: %q: %w", mech, line, proxy.ErrTokenRefused)
		case line != "+" && !strings.HasPrefix(line, "+ "):
			return fmt.Errorf("AUTH %s: %q: %w", mech, line, errUpstreamProto)
		case !irSent:
			err = up.writeLine(base64.StdEncoding.EncodeToString(ir))
		default:
			err = up.writeLine(base64.StdEncoding.EncodeToString(proxy.AnswerChallenge(cl, strings.TrimSpace(line[1:]))))
		}
		if err != nil {
			return err
		}
	}
}

func isOK(line string) bool  { return line == "+OK" || strings.HasPrefix(line, "+OK ") }
func isErr(line string) bool { return line == "-ERR" || strings.HasPrefix(line, "-ERR ") }

// temporary reports whether the text of an -ERR starts with a response code
// that means "try again later" (RFC 3206 section 4, RFC 2449 section
// 8.1.1); codes are compared without case.
func temporary(text string) bool {
	text = strings.TrimSpace(text)
	for _, code := range []string{"[SYS/TEMP]", "[IN-USE]"} {
		if len(text) >= len(code) && strings.EqualFold(text[:len(code)], code) {
			return true
		}
	}
	return false
}

func (up *upConn) writeLine(line string) error {
	if _, err := io.WriteString(up.nc, line+"\r\n"); err != nil {
		return fmt.Errorf("write upstream: %w: %w", proxy.ErrUnavailable, err)
	}
	return nil
}

func (up *upConn) readLine() (string, error) {
	line, err := proxy.ReadLine(up.br, upMaxLine)
	if err != nil {
		return "", fmt.Errorf("read upstream: %w: %w", proxy.ErrUnavailable, err)
	}
	return string(line), nil
}
