package imap

import (
	"errors"
	"net"
	"strings"

	"mailgate/proxy"
)

// Capabilities before login. AUTH=PLAIN only: Outlook and Apple Mail pick NTLM,
// DIGEST-MD5 or CRAM-MD5 when offered, which cannot be checked against a hashed
// app password (docs/clients.md, "Outlook and Apple Mail use any mechanism
// offered"). Before TLS no AUTH= at all and LOGINDISABLED, so that Outlook never
// sends a password in clear (field note 2, RFC 3501 section 6.2.3).
const (
	capsSecure    = "IMAP4rev1 SASL-IR ID LITERAL+ AUTH=PLAIN"
	capsPlaintext = "IMAP4rev1 STARTTLS LOGINDISABLED ID LITERAL+"
)

// conn is one client connection before authentication.
type conn struct {
	*proxy.TextConn
	s        *Server
	clientID string // name/version from ID, for the session log
}

func (s *Server) serveConn(nc net.Conn, mode proxy.TLSMode) {
	c := &conn{TextConn: proxy.NewTextConn(nc, mode), s: s}
	c.End(c.serve(), s.log)
}

func (c *conn) caps() string {
	if c.Secure {
		return capsSecure
	}
	return capsPlaintext
}

// serve runs the pre-auth command loop. Our own greeting carries the
// capabilities: some clients need them there (docs/clients.md, "Clients want
// capabilities in the greeting").
func (c *conn) serve() error {
	c.Reply("* OK [CAPABILITY %s] %s mailgate ready", c.caps(), c.s.opts.Hostname)
	return c.Loop(c.next)
}

// next reads and handles one command.
func (c *conn) next() error {
	r := &cmdReader{br: c.Reader, maxLine: c.s.opts.MaxLine, maxLiteral: c.s.opts.MaxLiteral, cont: c.cont}
	b, err := r.readCommand()
	var le *literalError
	switch {
	case errors.As(err, &le) && !le.nonSync:
		// Refused before the client sent it; the connection stays usable.
		c.Reply("%s BAD Literal too large", parseTag(b))
		return nil
	case errors.Is(err, errPrivacyRequired):
		// Refused before the client sent the literal: the connection stays
		// usable.
		c.Reply("%s %s", parseTag(b), textPrivacy)
		return nil
	case errors.As(err, &le), errors.Is(err, proxy.ErrLineTooLong):
		c.Reply("* BYE Command too long")
		return proxy.ErrClosing
	case err != nil:
		return err
	case len(b) == 0:
		return nil // an empty line: ignore it like most servers
	}
	cmd, err := parseCommand(b)
	if err != nil {
		c.Reply("%s BAD Syntax error", parseTag(b))
		return nil
	}
	return c.dispatch(cmd)
}

// dispatch runs one command; names are case-insensitive (RFC 3501 section 9).
func (c *conn) dispatch(cmd *command) error {
	switch strings.ToUpper(cmd.name) {
	case "CAPABILITY":
		return c.handleCapability(cmd)
	case "NOOP":
		return c.handleNoop(cmd)
	case "LOGOUT":
		return c.handleLogout(cmd)
	case "STARTTLS":
		return c.handleStartTLS(cmd)
	case "ID":
		return c.handleID(cmd)
	case "LOGIN":
		return c.handleLogin(cmd)
	case "AUTHENTICATE":
		return c.handleAuthenticate(cmd)
	}
	c.Reply("%s BAD Unknown command", cmd.tag)
	return nil
}

// errPrivacyRequired refuses a LOGIN literal before TLS.
var errPrivacyRequired = errors.New("login literal before tls")

// cont sends the continuation for a synchronising literal. Before TLS a
// LOGIN's literal can only be a user name or a password, which LOGIN would
// refuse with PRIVACYREQUIRED anyway: refusing it now, instead of inviting
// it with "+", keeps the client from sending it in clear (RFC 3501 section
// 7.5: without "+" the client must not send the literal; docs/clients.md,
// "Outlook sends passwords in clear if allowed").
func (c *conn) cont(sofar []byte) error {
	if !c.Secure && isLogin(sofar) {
		return errPrivacyRequired
	}
	c.Reply("+ Ready for literal data")
	return c.Writer.Flush()
}

// isLogin reports whether a command read so far is a LOGIN.
func isLogin(b []byte) bool {
	p := &parser{b: b}
	if p.atom() == "" || !p.space() {
		return false
	}
	return strings.EqualFold(p.atom(), "LOGIN")
}
