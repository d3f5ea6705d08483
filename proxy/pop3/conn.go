package pop3

import (
	"errors"
	"net"
	"strings"

	"mailgate/proxy"
)

// Capabilities before login (RFC 2449 section 6). SASL PLAIN only, as for
// IMAP: clients pick any stronger-looking mechanism offered, and none but
// PLAIN can be checked against a hashed app password. No PIPELINING: the
// relay cannot promise it for the upstream. Before TLS on an STLS listener
// only STLS, so that no client sends a password in clear (RFC 2595 section
// 4, like IMAP's LOGINDISABLED).
var (
	capsSecure    = []string{"USER", "SASL PLAIN", "RESP-CODES", "AUTH-RESP-CODE"}
	capsPlaintext = []string{"STLS"}
)

// Fixed replies: the client never learns which check failed (style: details
// go to the log only). [AUTH] and [SYS/TEMP] are RFC 3206's response codes.
const (
	textAuthFailed  = "-ERR [AUTH] Authentication failed"
	textUnavailable = "-ERR [SYS/TEMP] Service temporarily unavailable, try again later"
	textNeedTLS     = "-ERR Use STLS before logging in"
	textTooLong     = "-ERR Line too long"
)

// conn is one client connection before authentication.
type conn struct {
	*proxy.TextConn
	s       *Server
	user    string // from USER, for the PASS that follows
	hasUser bool
}

func (s *Server) serveConn(nc net.Conn, mode proxy.TLSMode) {
	c := &conn{TextConn: proxy.NewTextConn(nc, mode), s: s}
	c.End(c.serve(), s.log)
}

// serve runs the pre-auth command loop. The greeting has no APOP timestamp:
// APOP is not offered (RFC 1939 section 7).
func (c *conn) serve() error {
	c.Reply("+OK %s mailgate POP3 ready", c.s.opts.Hostname)
	return c.Loop(c.next)
}

// next reads and handles one command. Keywords are case-insensitive and
// arguments follow a single space (RFC 1939 section 3).
func (c *conn) next() error {
	line, err := c.readLine()
	if errors.Is(err, proxy.ErrLineTooLong) {
		c.Reply(textTooLong)
		return proxy.ErrClosing
	}
	if err != nil {
		return err
	}
	name, arg, _ := strings.Cut(string(line), " ")
	return c.dispatch(strings.ToUpper(name), arg)
}

func (c *conn) dispatch(name, arg string) error {
	switch name {
	case "CAPA":
		return c.handleCapa()
	case "QUIT":
		return c.handleQuit()
	case "STLS":
		return c.handleSTLS()
	case "USER":
		return c.handleUser(arg)
	case "PASS":
		return c.handlePass(arg)
	case "AUTH":
		return c.handleAuth(arg)
	}
	c.Reply("-ERR Unknown command")
	return nil
}

// handleCapa lists the capabilities for the current state (RFC 2449
// section 5); a multi-line reply ends with a lone ".".
func (c *conn) handleCapa() error {
	caps := capsPlaintext
	if c.Secure {
		caps = capsSecure
	}
	c.Reply("+OK Capability list follows")
	for _, cp := range caps {
		c.Reply("%s", cp)
	}
	c.Reply(".")
	return nil
}

// handleQuit ends the connection before login (RFC 1939 section 4).
func (c *conn) handleQuit() error {
	c.Reply("+OK mailgate signing off")
	return proxy.ErrClosing
}

// readLine reads one CRLF (or LF) terminated line of at most MaxLine
// bytes, without the line end.
func (c *conn) readLine() ([]byte, error) {
	return proxy.ReadLine(c.Reader, c.s.opts.MaxLine)
}
