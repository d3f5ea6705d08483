package smtp

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/emersion/go-smtp"
)

// Data streams the message to the upstream as it arrives (go-smtp has
// removed the dot-stuffing; the client's DotWriter adds it back), never
// holding it whole, and returns the upstream's reply to the final dot.
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
	src := &clientReader{r: r, nc: s.nc, timeout: s.blockTimeout(), limit: s.limit(up)}
	n, err := io.Copy(upstreamWriter{w: w, up: up}, src)
	if err != nil {
		// Never close w: that would send the final dot and deliver a
		// truncated message. Dropping the connection abandons it.
		s.drop(up)
		switch {
		case errors.Is(src.err, smtp.ErrDataTooLarge):
			return n, errTooBig
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
}

// clientReader reads the message from the client with a fresh deadline for
// each read (go-smtp's ReadTimeout covers only the command line) and enforces
// the size limit. It records its own error so that relay can tell a client
// failure from an upstream one.
type clientReader struct {
	r       io.Reader
	nc      net.Conn
	timeout time.Duration
	limit   int64 // 0: none
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
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// upstreamWriter bounds each write to the upstream by the block timeout.
type upstreamWriter struct {
	w  io.Writer
	up *upstream
}

func (u upstreamWriter) Write(p []byte) (int, error) {
	u.up.setWriteDeadline(dataBlockTimeout)
	return u.w.Write(p)
}
