package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

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

var (
	// errHandedOff ends the command loop after the session was relayed.
	errHandedOff = errors.New("session handed off")
	// errClose ends the command loop after a final reply (QUIT, too many
	// failures).
	errClose = errors.New("connection closing")
	// errLineTooLong: a client line over Options.MaxLine.
	errLineTooLong = errors.New("line too long")
)

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
	user        string // from USER, for the PASS that follows
	hasUser     bool
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

// serve runs the pre-auth command loop. The greeting has no APOP timestamp:
// APOP is not offered (RFC 1939 section 7).
func (c *conn) serve() error {
	c.reply("+OK %s mailgate POP3 ready", c.s.opts.Hostname)
	for {
		if err := c.bw.Flush(); err != nil {
			return err
		}
		if err := c.next(); err != nil {
			return err
		}
	}
}

// next reads and handles one command. Keywords are case-insensitive and
// arguments follow a single space (RFC 1939 section 3).
func (c *conn) next() error {
	line, err := c.readLine()
	if errors.Is(err, errLineTooLong) {
		c.reply(textTooLong)
		return errClose
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
	c.reply("-ERR Unknown command")
	return nil
}

// handleCapa lists the capabilities for the current state (RFC 2449
// section 5); a multi-line reply ends with a lone ".".
func (c *conn) handleCapa() error {
	caps := capsPlaintext
	if c.secure {
		caps = capsSecure
	}
	c.reply("+OK Capability list follows")
	for _, cp := range caps {
		c.reply("%s", cp)
	}
	c.reply(".")
	return nil
}

// handleQuit ends the connection before login (RFC 1939 section 4).
func (c *conn) handleQuit() error {
	c.reply("+OK mailgate signing off")
	return errClose
}

// readLine reads one CRLF (or LF) terminated line of at most MaxLine
// bytes, without the line end.
func (c *conn) readLine() ([]byte, error) {
	return readLine(c.br, c.s.opts.MaxLine)
}

func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max+2 {
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return line, err
		}
		return bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'}), nil
	}
}

// reply writes one response line; write errors surface at the next Flush.
func (c *conn) reply(format string, args ...any) {
	fmt.Fprintf(c.bw, format+"\r\n", args...)
}
