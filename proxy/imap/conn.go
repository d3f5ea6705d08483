package imap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

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

// errHandedOff ends the command loop after the session was relayed.
var errHandedOff = errors.New("session handed off")

// errClose ends the command loop after a final reply (LOGOUT, BYE).
var errClose = errors.New("connection closing")

// conn is one client connection before authentication.
type conn struct {
	s      *Server
	pc     *proxy.Conn // as accepted, under any TLS
	nc     net.Conn    // the TLS connection, or pc without TLS
	br     *bufio.Reader
	bw     *bufio.Writer
	remote netip.Addr

	secure      bool // TLS is on (or a "none" listener): logins allowed
	canStartTLS bool
	clientID    string // name/version from ID, for the session log
	deadline    time.Time
}

func (s *Server) serveConn(nc net.Conn, mode proxy.TLSMode) {
	pc := proxy.ConnOf(nc)
	c := &conn{
		s: s, pc: pc, nc: nc,
		br:          bufio.NewReader(nc),
		bw:          bufio.NewWriter(nc),
		remote:      pc.Remote(),
		secure:      mode != proxy.TLSStartTLS,
		canStartTLS: mode == proxy.TLSStartTLS,
		deadline:    pc.PreAuthDeadline(),
	}
	nc.SetDeadline(c.deadline)
	err := c.serve()
	if errors.Is(err, errHandedOff) {
		return // the relay closed both connections
	}
	c.bw.Flush()
	nc.Close()
	if err != nil && !errors.Is(err, errClose) && !errors.Is(err, io.EOF) {
		s.log.Debug("connection ended before login", "remote", c.remote, "err", err)
	}
}

func (c *conn) caps() string {
	if c.secure {
		return capsSecure
	}
	return capsPlaintext
}

// serve runs the pre-auth command loop. Our own greeting carries the
// capabilities: some clients need them there (docs/clients.md, "Clients want
// capabilities in the greeting").
func (c *conn) serve() error {
	c.reply("* OK [CAPABILITY %s] %s mailgate ready", c.caps(), c.s.opts.Hostname)
	for {
		if err := c.bw.Flush(); err != nil {
			return err
		}
		if err := c.next(); err != nil {
			return err
		}
	}
}

// next reads and handles one command.
func (c *conn) next() error {
	r := &cmdReader{br: c.br, maxLine: c.s.opts.MaxLine, maxLiteral: c.s.opts.MaxLiteral, cont: c.cont}
	b, err := r.readCommand()
	var le *literalError
	switch {
	case errors.As(err, &le) && !le.nonSync:
		// Refused before the client sent it; the connection stays usable.
		c.reply("%s BAD Literal too large", parseTag(b))
		return nil
	case errors.As(err, &le), errors.Is(err, errLineTooLong):
		c.reply("* BYE Command too long")
		return errClose
	case err != nil:
		return err
	case len(b) == 0:
		return nil // an empty line: ignore it like most servers
	}
	cmd, err := parseCommand(b)
	if err != nil {
		c.reply("%s BAD Syntax error", parseTag(b))
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
	c.reply("%s BAD Unknown command", cmd.tag)
	return nil
}

// cont sends the continuation for a synchronising literal.
func (c *conn) cont() error {
	c.reply("+ Ready for literal data")
	return c.bw.Flush()
}

// reply writes one response line; write errors surface at the next Flush.
func (c *conn) reply(format string, args ...any) {
	fmt.Fprintf(c.bw, format+"\r\n", args...)
}
