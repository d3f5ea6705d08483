package pop3

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"

	"mailgate/proxy"
)

// errAuthzid refuses a PLAIN authorisation identity other than the user.
var errAuthzid = errors.New("authorization identity differs from user")

// handleSTLS upgrades the connection (RFC 2595 section 4). Bytes the client
// sent before the handshake are dropped with the old reader, and the
// capabilities start over: a man in the middle cannot inject commands into
// the TLS session.
func (c *conn) handleSTLS() error {
	if !c.CanStartTLS {
		c.Reply("-ERR STLS not available")
		return nil
	}
	c.Reply("+OK Begin TLS negotiation")
	if err := c.Writer.Flush(); err != nil {
		return err
	}
	if err := c.StartTLS(c.s.opts.TLSConfig); err != nil {
		return fmt.Errorf("stls handshake: %w", err)
	}
	c.user, c.hasUser = "", false
	return nil
}

// handleUser remembers the name for PASS. It never says whether the name
// exists (RFC 1939 section 7 allows +OK for any name).
func (c *conn) handleUser(arg string) error {
	if !c.Secure {
		c.Reply(textNeedTLS)
		return nil
	}
	if arg == "" {
		c.Reply("-ERR Syntax: USER name")
		return nil
	}
	c.user, c.hasUser = arg, true
	c.Reply("+OK Send PASS")
	return nil
}

// handlePass logs in with the USER name. The password is the rest of the
// line, spaces included (RFC 1939 section 7). After a failure the client
// starts again with USER.
func (c *conn) handlePass(arg string) error {
	if !c.Secure {
		c.Reply(textNeedTLS)
		return nil
	}
	if !c.hasUser {
		c.Reply("-ERR Send USER first")
		return nil
	}
	user := c.user
	c.user, c.hasUser = "", false
	return c.login(user, arg)
}

// handleAuth runs AUTH PLAIN with or without an initial response (RFC 5034
// section 4; "=" is an empty one). AUTH alone lists the mechanisms, as
// older clients expect.
func (c *conn) handleAuth(arg string) error {
	if !c.Secure {
		c.Reply(textNeedTLS)
		return nil
	}
	mech, ir, hasIR := strings.Cut(arg, " ")
	switch {
	case mech == "":
		c.Reply("+OK Mechanisms follow")
		c.Reply("PLAIN")
		c.Reply(".")
		return nil
	case !strings.EqualFold(mech, sasl.Plain):
		c.Reply("-ERR Unsupported authentication mechanism")
		return nil
	}
	if !hasIR {
		c.Reply("+ ")
		if err := c.Writer.Flush(); err != nil {
			return err
		}
		line, err := c.readLine()
		if errors.Is(err, proxy.ErrLineTooLong) {
			c.Reply(textTooLong)
			return proxy.ErrClosing
		}
		if err != nil {
			return err
		}
		if string(line) == "*" { // RFC 5034 section 4: cancelled
			c.Reply("-ERR AUTH cancelled")
			return nil
		}
		ir = string(line)
	}
	resp, ok := decodeSASL(ir)
	if !ok {
		c.Reply("-ERR Malformed SASL response")
		return nil
	}
	return c.plain(resp)
}

// plain decodes a PLAIN response and logs in with it.
func (c *conn) plain(resp []byte) error {
	var user, pass string
	srv := sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return errAuthzid
		}
		user, pass = username, password
		return nil
	})
	if _, done, err := srv.Next(resp); err != nil || !done {
		c.s.log.Info("sasl exchange failed", "remote", c.Remote, "err", err)
		return c.refused(proxy.ErrAuthFailed)
	}
	return c.login(user, pass)
}

// decodeSASL decodes a base64 SASL response; "=" is an empty one (RFC 5034
// section 4).
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
func (c *conn) login(user, pass string) error {
	if pass == "" {
		// A probe for the password prompt, as old Outlook does over IMAP: no
		// store lookup, and not counted as a failure.
		c.Reply(textAuthFailed)
		return nil
	}
	ctx, cancel := context.WithDeadline(context.Background(), c.Deadline)
	defer cancel()
	sess, err := c.s.opts.Gate.Login(ctx, &proxy.LoginRequest{
		Username: user, Password: pass, Proto: proxy.ProtoPOP3, Remote: c.Remote,
	})
	if err != nil {
		return c.refused(err)
	}
	up, err := proxy.OpenUpstream(c.s.opts.Gate, sess, c.Deadline, c.s.openUpstream, (*upConn).close)
	if err != nil {
		sess.End()
		c.s.log.Info("upstream login failed", "remote", c.Remote, "user", sess.Mailbox, "upstream", c.s.opts.Upstream.Address, "err", err)
		return c.refused(err)
	}
	return c.handOff(sess, up)
}

// refused answers a login that did not pass. A failed login, and a refusal
// while the client is locked out, count toward proxy.MaxLoginFailures; past
// it the reply is the last line before the connection closes.
func (c *conn) refused(err error) error {
	text := textUnavailable
	if errors.Is(err, proxy.ErrAuthFailed) {
		text = textAuthFailed
	} else if !errors.Is(err, proxy.ErrThrottled) {
		c.Reply(text)
		return nil
	}
	c.Reply(text)
	if c.Accepted.LoginFailed() {
		return proxy.ErrClosing
	}
	return nil
}
