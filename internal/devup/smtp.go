package devup

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"mailgate/proxy"
)

// SMTPOptions configures the in-process SMTP submission upstream.
type SMTPOptions struct {
	// Verify checks the bearer token of an XOAUTH2 or OAUTHBEARER login.
	// Nil accepts every token.
	Verify XOAUTH2Verifier
	// TLSConfig turns TLS on: STARTTLS (required before AUTH, as Exchange Online
	// does, docs/clients.md, "SMTP AUTH only after TLS"), or implicit TLS when
	// Implicit is set. Nil serves plaintext (loopback tests only).
	TLSConfig *tls.Config
	Implicit  bool
	// Deliver receives each message once per recipient. Nil records the
	// messages instead; SMTPServer.Messages returns them.
	Deliver Deliverer
	// MaxMessageBytes is advertised as SIZE and enforced; 0 means no limit.
	MaxMessageBytes int64
	// Mechanisms are the AUTH mechanisms offered; nil means XOAUTH2 and
	// OAUTHBEARER.
	Mechanisms []string
	// RejectRcpt maps a recipient address (lower case) to the reply its RCPT
	// gets, to test that the proxy relays upstream replies verbatim.
	RejectRcpt map[string]*smtp.SMTPError
	// Logger receives the server's errors; nil means slog.Default.
	Logger *slog.Logger
}

// SMTPMessage is a message recorded when SMTPOptions.Deliver is nil.
type SMTPMessage struct {
	User string // the authenticated mailbox
	From string
	To   []string
	Data []byte
}

// SMTPServer is an SMTP submission server that, like Exchange Online and
// Gmail, accepts only OAuth2 bearer tokens (AUTH XOAUTH2 and OAUTHBEARER).
type SMTPServer struct {
	opts SMTPOptions
	srv  *smtp.Server

	mu   sync.Mutex
	msgs []SMTPMessage
}

// errSMTPDelivery is the reply when the Deliverer fails.
var errSMTPDelivery = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Delivery failed"}

// NewSMTP returns an SMTP upstream; call Serve to start it.
func NewSMTP(opts *SMTPOptions) *SMTPServer {
	s := &SMTPServer{opts: *opts}
	if s.opts.Logger == nil {
		s.opts.Logger = slog.Default()
	}
	if s.opts.Verify == nil {
		s.opts.Verify = func(user, token string) error { return nil }
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpSession{srv: s}, nil
	}))
	srv.Domain = "localhost"
	srv.MaxMessageBytes = s.opts.MaxMessageBytes
	// Bearer tokens run to a few kilobytes (docs/clients.md, "OAuth tokens
	// outgrow SMTP lines").
	srv.MaxLineLength = 64 << 10
	srv.TLSConfig = s.opts.TLSConfig
	srv.AllowInsecureAuth = s.opts.TLSConfig == nil
	srv.ErrorLog = smtpErrorLog{s.opts.Logger}
	s.srv = srv
	return s
}

// Serve accepts connections on ln until Close; it then returns nil.
func (s *SMTPServer) Serve(ln net.Listener) error {
	if s.opts.Implicit && s.opts.TLSConfig != nil {
		ln = tls.NewListener(ln, s.opts.TLSConfig)
	}
	return s.srv.Serve(ln)
}

// Close closes the listeners and every connection at once.
func (s *SMTPServer) Close() error {
	return s.srv.Close()
}

// Messages returns the messages recorded so far (Deliver nil only).
func (s *SMTPServer) Messages() []SMTPMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SMTPMessage(nil), s.msgs...)
}

// deliver hands r to the Deliverer once per recipient. A single recipient
// gets the stream itself; several share a spool file, so a large message is
// never held in memory.
func (s *SMTPServer) deliver(to []string, r io.Reader) error {
	if len(to) == 1 {
		return s.opts.Deliver.Deliver(to[0], r)
	}
	f, err := os.CreateTemp("", "devup-smtp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return err
	}
	for _, rcpt := range to {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if err := s.opts.Deliver.Deliver(rcpt, f); err != nil {
			return fmt.Errorf("deliver to %s: %w", rcpt, err)
		}
	}
	return nil
}

func (s *SMTPServer) record(m SMTPMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
}

// smtpSession is one connection to the upstream.
type smtpSession struct {
	srv  *SMTPServer
	user string // set by a successful AUTH
	from string
	to   []string
}

var (
	_ smtp.Session     = (*smtpSession)(nil)
	_ smtp.AuthSession = (*smtpSession)(nil)
)

func (s *smtpSession) AuthMechanisms() []string {
	if m := s.srv.opts.Mechanisms; m != nil {
		return m
	}
	return []string{proxy.XOAUTH2, sasl.OAuthBearer}
}

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	var inner sasl.Server
	switch mech {
	case proxy.XOAUTH2:
		inner = NewXOAUTH2Server(s.verify)
	case sasl.OAuthBearer:
		inner = sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			if err := s.verify(o.Username, o.Token); err != nil {
				return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
			}
			return nil
		})
	default:
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return smtpAuthFailure{inner}, nil
}

func (s *smtpSession) verify(user, token string) error {
	if err := s.srv.opts.Verify(user, token); err != nil {
		s.srv.opts.Logger.Info("devup smtp: token refused", "user", user, "err", err)
		return err
	}
	s.user = user
	return nil
}

func (s *smtpSession) Mail(from string, opts *smtp.MailOptions) error {
	if s.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	s.from, s.to = from, nil
	return nil
}

func (s *smtpSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	if e := s.srv.opts.RejectRcpt[strings.ToLower(to)]; e != nil {
		return e
	}
	s.to = append(s.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	if s.srv.opts.Deliver == nil {
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, r); err != nil {
			return err
		}
		s.srv.record(SMTPMessage{User: s.user, From: s.from, To: append([]string(nil), s.to...), Data: buf.Bytes()})
		return nil
	}
	if err := s.srv.deliver(s.to, r); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return se
		}
		s.srv.opts.Logger.Warn("devup smtp: delivery failed", "user", s.user, "err", err)
		return errSMTPDelivery
	}
	return nil
}

func (s *smtpSession) Reset() { s.from, s.to = "", nil }

func (s *smtpSession) Logout() error { return nil }

// smtpAuthFailure turns a refused token into 535 5.7.8, as real upstreams
// answer; go-smtp would otherwise send 454 with the Go error text.
type smtpAuthFailure struct{ sasl.Server }

func (a smtpAuthFailure) Next(resp []byte) ([]byte, bool, error) {
	challenge, done, err := a.Server.Next(resp)
	var se *smtp.SMTPError
	if err != nil && !errors.As(err, &se) {
		err = smtp.ErrAuthFailed
	}
	return challenge, done, err
}

// smtpErrorLog adapts go-smtp's logger to slog.
type smtpErrorLog struct{ l *slog.Logger }

func (e smtpErrorLog) Printf(format string, v ...any) {
	e.l.Debug("devup smtp: " + fmt.Sprintf(format, v...))
}

func (e smtpErrorLog) Println(v ...any) {
	e.l.Debug("devup smtp: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
