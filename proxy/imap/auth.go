package imap

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/emersion/go-sasl"

	"mailgate/proxy"
)

// Fixed replies: the client never learns which check failed (docs/clients.md,
// "Outlook probes with an empty password": keep the connection; style: details
// go to the log only).
const (
	textAuthFailed  = "NO [AUTHENTICATIONFAILED] Authentication failed"
	textUnavailable = "NO [UNAVAILABLE] Service temporarily unavailable, try again later"
	textPrivacy     = "NO [PRIVACYREQUIRED] TLS is required to log in"
)

// handleLogin takes LOGIN userid password, each an atom, a quoted string or
// a literal (docs/clients.md, "LOGIN arrives in every syntax").
func (c *conn) handleLogin(cmd *command) error {
	if !c.Secure {
		c.Reply("%s %s", cmd.tag, textPrivacy)
		return nil
	}
	if len(cmd.args) != 2 || !isAString(cmd.args[0]) || !isAString(cmd.args[1]) {
		c.Reply("%s BAD Syntax error in LOGIN", cmd.tag)
		return nil
	}
	return c.login(cmd.tag, cmd.args[0].val, cmd.args[1].val)
}

func isAString(a arg) bool { return a.kind == argAtom || a.kind == argString }

// handleAuthenticate runs AUTHENTICATE PLAIN or LOGIN, with or without an
// initial response (RFC 4959 SASL-IR; "=" is an empty one).
func (c *conn) handleAuthenticate(cmd *command) error {
	if !c.Secure {
		c.Reply("%s %s", cmd.tag, textPrivacy)
		return nil
	}
	if len(cmd.args) < 1 || len(cmd.args) > 2 || cmd.args[0].kind != argAtom ||
		(len(cmd.args) == 2 && cmd.args[1].kind != argAtom) {
		c.Reply("%s BAD Syntax error in AUTHENTICATE", cmd.tag)
		return nil
	}
	var user, pass string
	capture := func(identity, username, password string) error {
		if identity != "" && identity != username {
			return errAuthzid
		}
		user, pass = username, password
		return nil
	}
	var srv sasl.Server
	switch strings.ToUpper(cmd.args[0].val) {
	case sasl.Plain:
		srv = sasl.NewPlainServer(capture)
	case proxy.Login:
		srv = proxy.NewLoginServer(capture)
	default:
		c.Reply("%s NO Unsupported authentication mechanism", cmd.tag)
		return nil
	}
	var ir []byte
	if len(cmd.args) == 2 {
		var ok bool
		if ir, ok = decodeSASL(cmd.args[1].val); !ok {
			c.Reply("%s BAD Malformed initial response", cmd.tag)
			return nil
		}
	}
	return c.runSASL(cmd.tag, srv, ir, func() error { return c.login(cmd.tag, user, pass) })
}

// errAuthzid refuses a PLAIN authorisation identity other than the user.
var errAuthzid = errors.New("authorization identity differs from user")

// runSASL exchanges challenges until srv is done, then calls login.
func (c *conn) runSASL(tag string, srv sasl.Server, resp []byte, login func() error) error {
	for {
		challenge, done, err := srv.Next(resp)
		if done && err == nil {
			return login()
		}
		if err != nil {
			c.s.log.Info("sasl exchange failed", "remote", c.Remote, "err", err)
			return c.refused(tag, proxy.ErrAuthFailed)
		}
		c.Reply("+ %s", base64.StdEncoding.EncodeToString(challenge))
		if err := c.Writer.Flush(); err != nil {
			return err
		}
		line, err := proxy.ReadLine(c.Reader, c.s.opts.MaxLine)
		if err != nil {
			return err
		}
		if string(line) == "*" { // RFC 3501 section 6.2.2: cancelled
			c.Reply("%s BAD AUTHENTICATE cancelled", tag)
			return nil
		}
		var ok bool
		if resp, ok = decodeSASL(string(line)); !ok {
			c.Reply("%s BAD Malformed SASL response", tag)
			return nil
		}
	}
}

// decodeSASL decodes a base64 SASL response; "=" is an empty one (RFC 4959).
func decodeSASL(s string) ([]byte, bool) {
	if s == "=" {
		return []byte{}, true
	}
	b, err := base64.StdEncoding.DecodeString(s)
	return b, err == nil
}

// login runs the shared login step, logs in upstream within the session's
// context (a revoke or expiry meanwhile fails the login) and relays the
// session.
func (c *conn) login(tag, user, pass string) error {
	if pass == "" {
		// Old Outlook probes with an empty password to trigger its prompt
		// (docs/clients.md, "Outlook probes with an empty password"): no store
		// lookup, and not counted as a failure.
		c.Reply("%s %s", tag, textAuthFailed)
		return nil
	}
	ctx, cancel := context.WithDeadline(context.Background(), c.Deadline)
	defer cancel()
	sess, err := c.s.opts.Gate.Login(ctx, &proxy.LoginRequest{
		Username: user, Password: pass, Proto: proxy.ProtoIMAP, Remote: c.Remote,
	})
	if err != nil {
		return c.refused(tag, err)
	}
	up, err := proxy.OpenUpstream(c.s.opts.Gate, sess, c.Deadline, c.s.openUpstream, (*upConn).close)
	if err != nil {
		sess.End()
		c.s.log.Info("upstream login failed", "remote", c.Remote, "user", sess.Mailbox, "upstream", c.s.opts.Upstream.Address, "err", err)
		return c.refused(tag, err)
	}
	return c.handOff(tag, sess, up)
}

// refused answers a login that did not pass. A failed login, and a refusal
// while the client is locked out, count toward proxy.MaxLoginFailures.
func (c *conn) refused(tag string, err error) error {
	text := textUnavailable
	if errors.Is(err, proxy.ErrAuthFailed) {
		text = textAuthFailed
	} else if !errors.Is(err, proxy.ErrThrottled) {
		c.Reply("%s %s", tag, text)
		return nil
	}
	c.Reply("%s %s", tag, text)
	if c.Accepted.LoginFailed() {
		// Ends guessing on this connection without hurting a client that retries
		// once with another mechanism (docs/clients.md, "One wrong password can
		// cost two failures").
		c.Reply("* BYE Too many failed logins")
		return proxy.ErrClosing
	}
	return nil
}
