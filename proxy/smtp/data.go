package smtp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"time"

	"github.com/emersion/go-smtp"

	"mailgate/proxy"
)

// Data streams the message to the upstream as it arrives (go-smtp has
// removed the dot-stuffing; the stuffer adds it back), never holding it
// whole, and returns the upstream's reply to the final dot.
func (s *session) Data(r io.Reader) error {
	if s.login == nil {
		return errAuthRequired
	}
	s.relaying.Lock()
	defer s.relaying.Unlock()
	up := s.current()
	if up == nil {
		return errUpstreamLost
	}
	s.mu.Lock()
	s.inData = true
	from, rcpts := s.from, s.rcpts
	s.mu.Unlock()
	n, err := s.relay(up, r)
	s.mu.Lock()
	s.inData, s.msgs = false, s.msgs+1
	s.mu.Unlock()
	s.logMessage(from, rcpts, n, err)
	return err
}

// relay runs one DATA upstream. The returned error is the reply for the
// client: the upstream's, verbatim, or a fixed 4xx/5xx.
func (s *session) relay(up *upstream, r io.Reader) (int64, error) {
	w, err := up.c.Data()
	if err != nil {
		return 0, s.upstreamError(up, err)
	}
	src := &clientReader{r: r, nc: s.nc, timeout: s.blockTimeout(), limit: s.limit(up),
		count: s.srv.front.RelayCounters().ClientToUpstream}
	st := newStuffer(up.tc, w)
	defer st.release()
	dst := &crlfWriter{w: upstreamWriter{w: st, up: up}}
	n, err := io.Copy(dst, src)
	if err == nil {
		err = dst.Close()
	}
	if err == nil {
		err = st.Close()
	}
	if err != nil {
		// Never close w: that would send the final dot and deliver a
		// truncated message. Dropping the connection abandons it.
		s.drop(up)
		switch {
		case errors.Is(src.err, smtp.ErrDataTooLarge):
			return n, errTooBig
		case errors.Is(src.err, smtp.ErrTooLongLine):
			s.discardMessage(src.limit)
			return n, errLineTooLong
		case src.err != nil:
			return n, errAborted
		}
		s.log.Warn("smtp upstream connection lost during DATA", "upstream", s.srv.opts.Upstream.Address, "err", err)
		return n, errUpstreamLost
	}
	resp, err := w.CloseWithResponse()
	s.mu.Lock()
	s.upTx = false // the final reply ends the upstream transaction
	s.mu.Unlock()
	if err != nil {
		return n, s.upstreamError(up, err)
	}
	// go-smtp writes a Data error's code and text as they are, 250 included:
	// so the client sees the upstream's own reply (queue id and all).
	return n, parseReply(250, resp.StatusText)
}

// blockTimeout is the wait for each read from the client inside DATA: the
// per-block timeout, or the command timeout when configured lower.
func (s *session) blockTimeout() time.Duration {
	return min(dataBlockTimeout, s.srv.opts.ReadTimeout)
}

// logMessage writes the one log line per message.
func (s *session) logMessage(from string, rcpts int, size int64, reply error) {
	var se *smtp.SMTPError
	code, text := 250, ""
	if errors.As(reply, &se) {
		code, text = se.Code, se.Message
	}
	lvl := s.log.Info
	if code/100 != 2 {
		lvl = s.log.Warn
	}
	lvl("smtp message", "from", from, "recipients", rcpts, "size", size,
		"reply_code", code, "reply", text)
	s.srv.opts.Messages.Message(messageResult(code), size)
}

// clientReader reads the message from the client with a fresh deadline for
// each read (go-smtp's ReadTimeout covers only the command line), enforces
// the size limit and counts the bytes as they move (the relayed bytes
// metric, as IMAP and POP3 count theirs). It records its own error so that
// relay can tell a client failure from an upstream one.
type clientReader struct {
	r       io.Reader
	nc      net.Conn
	timeout time.Duration
	limit   int64             // 0: none
	count   proxy.ByteCounter // nil: none
	n       int64
	err     error
}

func (c *clientReader) Read(p []byte) (int, error) {
	c.nc.SetReadDeadline(time.Now().Add(c.timeout))
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.limit > 0 && c.n > c.limit {
		n, err = 0, smtp.ErrDataTooLarge
	}
	if n > 0 && c.count != nil {
		c.count.Add(float64(n))
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// upstreamWriter bounds each write to the upstream by the block timeout,
// and sends each chunk of the message as it comes, in as few system calls
// as it can: the stuffer's 16 KiB TLS records, corked (proxy.Cork), leave
// in one. Nothing but the stuffer's held-back partial line (at most
// holdMax) waits for the client's next bytes: an upstream times out a
// silent DATA (RFC 5321 section 4.5.3.2.5).
type upstreamWriter struct {
	w  *stuffer
	up *upstream
}

func (u upstreamWriter) Write(p []byte) (int, error) {
	u.up.setWriteDeadline(dataBlockTimeout)
	flush := proxy.Cork(u.up.raw)
	n, err := u.w.Write(p)
	if err == nil {
		err = u.w.Flush()
	}
	if ferr := flush(); err == nil {
		err = ferr
	}
	return n, err
}

// crlfWriter turns every bare CR (one not followed by LF) into CRLF on the
// way to the upstream, as the stuffer already does for bare LF,
// so that the upstream receives CRLF lines only, each line that starts with a
// dot stuffed. The end of the message is then the final dot we send and
// nothing else, whatever the upstream makes of bare CR or LF: a client cannot
// hide "\r.\r" or "\r\n.\r" plus a second MAIL FROM inside a message (SMTP
// smuggling, CVE-2023-51764/51765/51766). go-smtp ends DATA only at
// CRLF.CRLF, so nothing the client sends ends the message early on our side.
//
// Refusing such a message (550 5.6.2, as Postfix's
// smtpd_forbid_bare_newline does) would be no safer here, since what the
// upstream receives is canonical either way, and it would cost more: the
// message streams, so a refusal comes after part of it went upstream, which
// must then be dropped; go-smtp drops a CR that follows a dot at the start of
// a line, so not every bare CR could be seen; and bare LF is normalised
// already, so one rule covers both.
type crlfWriter struct {
	w  io.Writer
	cr bool // the last byte written was a CR
}

var lf = []byte{'\n'}

func (c *crlfWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.cr && p[0] != '\n' {
		if _, err := c.w.Write(lf); err != nil {
			return 0, err
		}
	}
	done := 0 // p[:done] is written
	for i := 0; ; i++ {
		j := bytes.IndexByte(p[i:], '\r')
		if j < 0 || i+j+1 == len(p) {
			break
		}
		i += j
		if p[i+1] != '\n' {
			if _, err := c.w.Write(p[done : i+1]); err != nil {
				return done, err
			}
			if _, err := c.w.Write(lf); err != nil {
				return i + 1, err
			}
			done = i + 1
		}
	}
	c.cr = p[len(p)-1] == '\r'
	n, err := c.w.Write(p[done:])
	return done + n, err
}

// Close ends a message whose last byte is a bare CR.
func (c *crlfWriter) Close() error {
	if !c.cr {
		return nil
	}
	c.cr = false
	_, err := c.w.Write(lf)
	return err
}

// lineDrainTimeout is how long discardMessage waits for more of the message:
// once the client has sent it all, it waits for our reply.
const lineDrainTimeout = 2 * time.Second

// discardMessage reads and discards the rest of a message whose line was
// longer than maxLineLength, from the connection itself, up to limit bytes
// (0: no limit). go-smtp's line reader fails for good at such a line
// (lengthlimit_reader.go), so the connection cannot be used again and is
// closed after our reply; a client still sending when it closes would get a
// TCP reset that can eat the reply, and a client that sees no reply tries
// again. Reading up to the end of data (CRLF.CRLF) first lets the client
// finish and read a permanent refusal. The bytes go-smtp read with the long
// line are lost, the end of data among them perhaps: then the client waits
// and the read times out.
func (s *session) discardMessage(limit int64) {
	const end = "\r\n.\r\n"
	buf := make([]byte, 32<<10)
	matched := 0 // how much of end the bytes so far end with
	for read := int64(0); limit <= 0 || read < limit; {
		s.nc.SetReadDeadline(time.Now().Add(lineDrainTimeout))
		n, err := s.nc.Read(buf)
		read += int64(n)
		for _, b := range buf[:n] {
			switch {
			case b == end[matched]:
				matched++
			case b == '\r': // end has no other prefix that is also a suffix
				matched = 1
			default:
				matched = 0
			}
			if matched == len(end) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
