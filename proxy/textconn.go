package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

var (
	// ErrHandedOff ends a front end's command loop after the session was
	// relayed: the relay has closed both connections.
	ErrHandedOff = errors.New("session handed off")
	// ErrClosing ends a front end's command loop after a final reply
	// (LOGOUT, QUIT, BYE, too many failures).
	ErrClosing = errors.New("connection closing")
	// ErrLineTooLong is a client line over the front end's MaxLine.
	ErrLineTooLong = errors.New("line too long")
)

// TextConn is a client connection of a line-based front end (IMAP, POP3)
// before authentication: the part of its state and lifecycle both share.
// The front end embeds it and keeps its wire format to itself.
type TextConn struct {
	Accepted *Conn    // as accepted, under any TLS
	Conn     net.Conn // the TLS connection, or Accepted without TLS
	Reader   *bufio.Reader
	Writer   *bufio.Writer
	Remote   netip.Addr

	Secure      bool // TLS is on (or a "none" listener): logins allowed
	CanStartTLS bool
	// Deadline is the pre-auth deadline, armed on Conn; an upstream login
	// must be done by then too.
	Deadline time.Time

	relay func() // from HandOff, run by End
}

// NewTextConn starts a TextConn on nc, a connection from a Front's
// listener in mode, and arms its pre-auth deadline.
func NewTextConn(nc net.Conn, mode TLSMode) *TextConn {
	pc := ConnOf(nc)
	t := &TextConn{
		Accepted: pc, Conn: nc,
		Reader:      bufio.NewReader(nc),
		Writer:      bufio.NewWriter(nc),
		Remote:      pc.Remote(),
		Secure:      mode != TLSStartTLS,
		CanStartTLS: mode == TLSStartTLS,
		Deadline:    pc.PreAuthDeadline(),
	}
	nc.SetDeadline(t.Deadline)
	return t
}

// Loop flushes the replies written so far and calls next for the next
// command, until an error.
func (t *TextConn) Loop(next func() error) error {
	for {
		if err := t.Writer.Flush(); err != nil {
			return err
		}
		if err := next(); err != nil {
			return err
		}
	}
}

// HandOff ends the command loop (it returns ErrHandedOff for the loop to
// return) and leaves relay for End to run once the loop has unwound. A
// relayed session waits in its reads for hours, and Go shrinks a parked
// goroutine's stack only while it uses under a quarter of it: relaying from
// inside the login's calls (4.2 KiB of frames) kept a 16 KiB stack per
// session, relaying from End keeps 8 KiB.
func (t *TextConn) HandOff(relay func()) error {
	t.relay = relay
	return ErrHandedOff
}

// End closes the connection after the command loop returned err, unless
// the session was handed off: then it runs the relay, which closes both
// connections. An unexpected end is logged at debug level: clients hang up
// all the time.
func (t *TextConn) End(err error, log *slog.Logger) {
	if errors.Is(err, ErrHandedOff) {
		if relay := t.relay; relay != nil {
			t.relay = nil
			relay()
		}
		return
	}
	t.Writer.Flush()
	t.Conn.Close()
	if err != nil && !errors.Is(err, ErrClosing) && !errors.Is(err, io.EOF) {
		log.Debug("connection ended before login", "remote", t.Remote, "err", err)
	}
}

// Reply writes one response line; write errors surface at the next Flush.
func (t *TextConn) Reply(format string, args ...any) {
	fmt.Fprintf(t.Writer, format+"\r\n", args...)
}

// StartTLS runs the server side of the TLS handshake (STARTTLS, STLS)
// after the front end flushed its go-ahead, then reads and writes over
// TLS. Bytes the client sent before the handshake are dropped with the old
// reader, so that a man in the middle cannot inject commands into the TLS
// session (RFC 2595 section 3.1); the front end forgets the rest of its
// plaintext state.
func (t *TextConn) StartTLS(cfg *tls.Config) error {
	tc := tls.Server(t.Accepted, cfg)
	if err := t.Accepted.Handshake(tc); err != nil {
		return err
	}
	t.Conn, t.Secure, t.CanStartTLS = tc, true, false
	t.Reader = bufio.NewReader(tc)
	t.Writer.Reset(tc)
	return nil
}

// Release returns copies of the bytes read ahead from the client and from
// up, for the relay to send first, and drops the client's buffered reader
// and writer, which would otherwise stay allocated (12 KiB) for a session
// that may idle for hours. The caller drops up.
func (t *TextConn) Release(up *bufio.Reader) (clientBuf, upBuf []byte) {
	clientBuf, upBuf = peekAll(t.Reader), peekAll(up)
	t.Reader, t.Writer = nil, nil
	return clientBuf, upBuf
}

func peekAll(br *bufio.Reader) []byte {
	if br.Buffered() == 0 {
		return nil
	}
	b, _ := br.Peek(br.Buffered())
	return bytes.Clone(b)
}

// ReadLine reads one line of at most max bytes up to LF and strips CRLF (or
// a bare LF: some clients send it). A longer line is ErrLineTooLong; the
// rest is left unread because the connection will be closed.
func ReadLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max+2 {
			return nil, ErrLineTooLong
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
