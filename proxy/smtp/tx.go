package smtp

import (
	"context"
	"errors"
	"strings"
	"unicode"

	"github.com/emersion/go-smtp"
)

// Mail starts a transaction upstream. go-smtp has already checked the
// syntax and refused the parameters we do not advertise.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.login == nil {
		return errAuthRequired
	}
	if hasControl(from) || opts.Auth != nil && hasControl(*opts.Auth) {
		return errControlChar
	}
	if s.srv.shuttingDown() {
		s.end(true)
		return errShuttingDown
	}
	up, err := s.upstream()
	if err != nil {
		return err
	}
	if limit := s.limit(up); limit > 0 && opts.Size > limit {
		return errTooBig
	}
	// go-smtp adds BODY=8BITMIME itself when the upstream offers it.
	if err := up.c.Mail(from, &smtp.MailOptions{Size: opts.Size}); err != nil {
		return s.upstreamError(up, err)
	}
	s.mu.Lock()
	s.inTx, s.upTx = true, true
	s.from, s.rcpts = from, 0
	s.mu.Unlock()
	return nil
}

// Rcpt adds a recipient upstream; a refusal reaches the client verbatim.
func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if s.login == nil {
		return errAuthRequired
	}
	if hasControl(to) {
		return errControlChar
	}
	up := s.current()
	if up == nil {
		return errUpstreamLost
	}
	if err := up.c.Rcpt(to, nil); err != nil {
		return s.upstreamError(up, err)
	}
	s.mu.Lock()
	s.rcpts++
	s.mu.Unlock()
	return nil
}

// hasControl reports a control character (C0, DEL or C1) in an address or
// parameter. go-smtp's path parser stops only at space, tab and '>', so a CR,
// LF or NUL can reach us inside an address. RFC 5321 section 4.1.2 allows none
// of them in a Mailbox, and relaying one would fail or worse: go-smtp's client
// refuses CR and LF without an SMTP reply (which looked like a broken upstream
// connection), and a NUL went upstream as it was. So the command is refused
// here and the upstream never sees it.
func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// Reset is go-smtp's RSET, and also runs after every DATA and on a repeated
// EHLO. An open upstream transaction gets RSET too. During Shutdown, this is
// where a session whose transaction has just finished ends.
func (s *session) Reset() {
	// BDAT runs Data beside this goroutine; go-smtp has closed its pipe
	// before calling Reset, so Data ends soon and we wait for it.
	s.relaying.Lock()
	defer s.relaying.Unlock()
	s.mu.Lock()
	up, open := s.up, s.upTx
	s.inTx, s.upTx, s.from, s.rcpts = false, false, "", 0
	s.mu.Unlock()
	if up != nil && open {
		if err := up.c.Reset(); err != nil {
			s.upstreamError(up, err)
		}
	}
	if s.srv.shuttingDown() {
		s.end(true)
	}
}

// upstream returns the upstream connection, logging in again when the last
// one broke (after an aborted DATA, for instance).
func (s *session) upstream() (*upstream, error) {
	if up := s.current(); up != nil {
		return up, nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, loginTimeout)
	defer cancel()
	up, err := s.srv.login(ctx, s.login.Mailbox)
	if err != nil {
		s.log.Warn("smtp upstream reconnect failed", "upstream", s.srv.opts.Upstream.Address, "err", err)
		return nil, errUpstreamDown
	}
	if !s.setUpstream(up, nil) {
		up.abort()
		return nil, errUpstreamDown
	}
	return up, nil
}

func (s *session) current() *upstream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up
}

// upstreamError passes an upstream reply through verbatim (docs/clients.md,
// "Pass upstream SMTP replies through"). Anything else means the connection is
// broken: it is dropped, the next MAIL logs in again, and the client gets a 4xx
// so it retries.
func (s *session) upstreamError(up *upstream, err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		if se.Code == 421 { // the upstream is closing the connection
			s.drop(up)
		}
		return verbatim(se)
	}
	s.log.Warn("smtp upstream connection lost", "upstream", s.srv.opts.Upstream.Address, "err", err)
	s.drop(up)
	return errUpstreamLost
}

// drop closes up and forgets it, if it is still the current one.
func (s *session) drop(up *upstream) {
	s.mu.Lock()
	if s.up == up {
		s.up, s.upTx = nil, false
	}
	s.mu.Unlock()
	up.abort()
}

// limit is the message size limit: the upstream's SIZE, or MaxMessageBytes
// when that is lower or the upstream has none. 0 means none.
func (s *session) limit(up *upstream) int64 {
	limit := s.srv.opts.MaxMessageBytes
	if up.size > 0 && (limit == 0 || up.size < limit) {
		limit = up.size
	}
	return limit
}

// verbatim keeps a reply without an enhanced status code that way: go-smtp
// would otherwise add X.0.0 to the last line.
func verbatim(se *smtp.SMTPError) *smtp.SMTPError {
	if se.EnhancedCode != smtp.EnhancedCodeNotSet {
		return se
	}
	cp := *se
	cp.EnhancedCode = smtp.NoEnhancedCode
	return &cp
}
