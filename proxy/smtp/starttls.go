package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
)

// startTLS runs RFC 3207 on raw itself (greeting, EHLO, STARTTLS, the
// handshake) instead of go-smtp's NewClientStartTLS, so that the session
// holds the *tls.Conn go-smtp's client writes to: the message goes to it
// directly (stuffer). It returns that connection with the greeting
// replayed in front, for go-smtp's client, which reads a greeting before
// its EHLO (RFC 3207 section 4.2: after the handshake the client starts
// over with EHLO).
func startTLS(ctx context.Context, raw net.Conn, cfg *tls.Config, hostname string) (*tls.Conn, net.Conn, error) {
	tp := textproto.NewConn(raw)
	_, greeting, err := tp.ReadResponse(220)
	if err == nil {
		err = tp.PrintfLine("EHLO %s", hostname)
	}
	var ext string
	if err == nil {
		_, ext, err = tp.ReadResponse(250)
	}
	if err == nil && !hasExtension(ext, "STARTTLS") {
		err = errors.New("upstream does not offer STARTTLS")
	}
	if err == nil {
		err = tp.PrintfLine("STARTTLS")
	}
	if err == nil {
		_, _, err = tp.ReadResponse(220)
	}
	// Bytes after the 220 would be read as if they came over TLS (the
	// STARTTLS injection of CVE-2011-0411): refuse them.
	if err == nil && tp.R.Buffered() > 0 {
		err = errors.New("upstream sent bytes after its STARTTLS reply")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("starttls: %w", err)
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, nil, fmt.Errorf("tls handshake: %w", err)
	}
	line, _, _ := strings.Cut(greeting, "\n")
	return tc, &replayConn{Conn: tc, pending: []byte("220 " + line + "\r\n")}, nil
}

// hasExtension reports whether an EHLO reply's text (one keyword line
// after the greeting line) names ext.
func hasExtension(reply, ext string) bool {
	for _, l := range strings.Split(reply, "\n")[1:] {
		if kw, _, _ := strings.Cut(l, " "); strings.EqualFold(kw, ext) {
			return true
		}
	}
	return false
}

// replayConn returns pending before what its connection reads.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
