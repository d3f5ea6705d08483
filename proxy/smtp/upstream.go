package smtp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"mailgate/proxy"
)

// upstream is the authenticated connection to the submission server.
type upstream struct {
	c    *smtp.Client
	raw  net.Conn // under any TLS: deadlines and hard aborts
	tc   net.Conn // what c writes to (TLS, or raw without): the message goes here (stuffer)
	size int64    // the upstream's SIZE, 0 when it announces none
}

// login connects to the upstream and authenticates as mailbox, with one
// retry on a fresh token when the upstream refuses the cached one. Errors
// wrap proxy.ErrAuthFailed (the mailbox cannot send) or
// proxy.ErrUnavailable.
func (s *Server) login(ctx context.Context, mailbox string) (*upstream, error) {
	return proxy.LoginWithToken(ctx, s.opts.Tokens, mailbox, func(token string) (*upstream, error) {
		return s.connect(ctx, mailbox, token)
	})
}

// connect dials the upstream, reads the greeting, says EHLO, gets TLS and
// authenticates with token.
func (s *Server) connect(ctx context.Context, mailbox, token string) (*upstream, error) {
	u := &s.opts.Upstream
	raw, err := u.DialLogin(ctx)
	if err != nil {
		return nil, err
	}
	// As for IMAP and POP3: the login timeout, or the session ending, must
	// not wait for a silent upstream.
	var up *upstream
	err = proxy.LoginOn(ctx, raw, func() error {
		var err error
		if up, err = s.greet(ctx, raw); err == nil {
			err = up.auth(u, mailbox, token)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	up.c.CommandTimeout = defaultCommandTimeout
	up.c.SubmissionTimeout = finalDotTimeout
	return up, nil
}

// greet reads the greeting, says EHLO and, for STARTTLS, gets TLS.
func (s *Server) greet(ctx context.Context, raw net.Conn) (*upstream, error) {
	u := &s.opts.Upstream
	var c *smtp.Client
	var err error
	tc := raw
	if u.TLS == proxy.TLSStartTLS {
		var replay net.Conn
		if tc, replay, err = startTLS(ctx, raw, u.ClientTLS(), s.opts.Hostname); err == nil {
			c = smtp.NewClient(replay)
		}
	} else {
		c = smtp.NewClient(raw)
	}
	if err == nil {
		c.CommandTimeout = loginTimeout
		err = c.Hello(s.opts.Hostname)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: upstream %s: %w", proxy.ErrUnavailable, u.Address, err)
	}
	up := &upstream{c: c, raw: raw, tc: tc}
	if n, ok := c.MaxMessageSize(); ok {
		up.size = int64(n)
	}
	return up, nil
}

// auth runs AUTH XOAUTH2 or OAUTHBEARER with the token sent after the 334
// prompt, never on the AUTH line (docs/clients.md, "OAuth tokens outgrow SMTP
// lines").
func (up *upstream) auth(u *proxy.Upstream, mailbox, token string) error {
	sc := u.SASLClient(mailbox, token)
	mech, _, _ := sc.Start()
	if !up.c.SupportsAuth(mech) {
		return fmt.Errorf("%w: upstream does not offer AUTH %s", proxy.ErrUnavailable, mech)
	}
	ack := []byte{}
	if u.Mechanism == proxy.MechOAuthBearer {
		ack = []byte{1} // RFC 7628 section 3.2.3
	}
	err := up.c.Auth(&afterPrompt{Client: sc, ack: ack})
	var se *smtp.SMTPError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se) && se.Code/100 == 5:
		return fmt.Errorf("%w: %w", proxy.ErrTokenRefused, err)
	}
	return fmt.Errorf("%w: upstream auth: %w", proxy.ErrUnavailable, err)
}

// quit says QUIT politely and closes.
func (up *upstream) quit() {
	up.c.CommandTimeout = quitTimeout
	if err := up.c.Quit(); err != nil {
		up.abort()
	}
}

// abort drops the connection. In the middle of DATA this is the only way to
// abandon a message without the upstream accepting a truncated one.
func (up *upstream) abort() {
	up.raw.Close()
}

// afterPrompt wraps a SASL client so that go-smtp sends "AUTH <mech>" alone
// and the initial response after the server's empty "334 " prompt (RFC 4954
// section 4). go-smtp puts a non-nil initial response on the AUTH line.
type afterPrompt struct {
	sasl.Client
	ir   []byte
	sent bool
	ack  []byte // answer to an error challenge
}

func (a *afterPrompt) Start() (string, []byte, error) {
	mech, ir, err := a.Client.Start()
	a.ir = ir
	return mech, nil, err
}

// Next sends the initial response to the first prompt. A second challenge is the
// base64 JSON error of Gmail and Dovecot (docs/clients.md, "XOAUTH2 and its
// error challenge"): it gets the acknowledgement (empty for XOAUTH2, ^A for
// OAUTHBEARER), after which the server sends its failure reply. go-smtp stops on
// a nil response, so neither may be nil.
func (a *afterPrompt) Next(challenge []byte) ([]byte, error) {
	if !a.sent {
		a.sent = true
		if a.ir == nil {
			return []byte{}, nil
		}
		return a.ir, nil
	}
	return a.ack, nil
}

// fixedFailures maps every SASL error that is not already an SMTP reply
// (malformed PLAIN with too few or too many fields, LOGIN out of step) to
// 535 5.7.8, instead of go-smtp's 454 with the Go error text, and counts it
// as a failed AUTH: otherwise malformed responses would be free guesses.
type fixedFailures struct {
	sasl.Server
	failed func()
}

func (f fixedFailures) Next(resp []byte) ([]byte, bool, error) {
	challenge, done, err := f.Server.Next(resp)
	var se *smtp.SMTPError
	if err != nil && !errors.As(err, &se) {
		err = errAuthFailed
		f.failed()
	}
	return challenge, done, err
}

// setWriteDeadline bounds the next writes to the upstream (data.go).
func (up *upstream) setWriteDeadline(d time.Duration) {
	up.raw.SetWriteDeadline(time.Now().Add(d))
}
