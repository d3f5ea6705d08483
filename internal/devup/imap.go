package devup

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"

	"mailgate/proxy"
)

// IMAPOptions configures the in-process IMAP upstream.
type IMAPOptions struct {
	// Verify checks the bearer token of an XOAUTH2 or OAUTHBEARER login.
	// Nil accepts every token.
	Verify XOAUTH2Verifier
	// TLSConfig turns TLS on: implicit TLS from the first byte, or STARTTLS
	// when StartTLS is set. Nil serves plaintext (loopback tests only).
	TLSConfig *tls.Config
	StartTLS  bool
	// Logger receives the server's error messages; nil means slog.Default.
	Logger *slog.Logger
}

// IMAPServer is an in-memory IMAP server that, like Exchange Online and
// Gmail, accepts only OAuth2 bearer tokens. Users are created on demand.
type IMAPServer struct {
	opts  IMAPOptions
	srv   *imapserver.Server
	mu    sync.Mutex
	users map[string]*imapmemserver.User
}

var _ Deliverer = (*IMAPServer)(nil)

// NewIMAP returns an IMAP upstream; call Serve to start it.
func NewIMAP(opts *IMAPOptions) *IMAPServer {
	s := &IMAPServer{opts: *opts, users: make(map[string]*imapmemserver.User)}
	if s.opts.Logger == nil {
		s.opts.Logger = slog.Default()
	}
	if s.opts.Verify == nil {
		s.opts.Verify = func(user, token string) error { return nil }
	}
	so := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &imapSession{srv: s}, nil, nil
		},
		// The caps of a server like Exchange Online (docs/clients.md, "Upstreams
		// differ in capabilities").
		Caps: imap.CapSet{
			imap.CapIMAP4rev1: {}, imap.CapNamespace: {}, imap.CapUIDPlus: {}, imap.CapMove: {},
			imap.CapChildren: {}, imap.CapLiteralPlus: {},
		},
		Logger:       imapLogAdapter{s.opts.Logger},
		InsecureAuth: s.opts.TLSConfig == nil,
	}
	if s.opts.StartTLS {
		so.TLSConfig = s.opts.TLSConfig
	}
	s.srv = imapserver.New(so)
	return s
}

// Serve accepts IMAP connections on ln until Close.
func (s *IMAPServer) Serve(ln net.Listener) error {
	if s.opts.TLSConfig != nil && !s.opts.StartTLS {
		ln = tls.NewListener(ln, s.opts.TLSConfig)
	}
	return s.srv.Serve(ln)
}

// Close stops the server and closes every connection.
func (s *IMAPServer) Close() error {
	return s.srv.Close()
}

// Deliver appends msg to mailbox's INBOX, creating the user if needed.
// Clients in IDLE on that INBOX see the new EXISTS at once.
func (s *IMAPServer) Deliver(mailbox string, msg io.Reader) error {
	b, err := io.ReadAll(msg)
	if err != nil {
		return fmt.Errorf("deliver to %s: %w", mailbox, err)
	}
	_, err = s.imapUser(mailbox).Append("INBOX", bytes.NewReader(b), &imap.AppendOptions{Time: time.Now()})
	if err != nil {
		return fmt.Errorf("deliver to %s: %w", mailbox, err)
	}
	return nil
}

// imapUser returns the user for mailbox (case-insensitive), created with an
// INBOX on first use.
func (s *IMAPServer) imapUser(mailbox string) *imapmemserver.User {
	key := strings.ToLower(mailbox)
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[key]
	if u == nil {
		// The password is unusable: Login is refused for every user.
		u = imapmemserver.NewUser(key, "")
		u.Create("INBOX", nil)
		s.users[key] = u
	}
	return u
}

// imapSession is one upstream connection; the embedded UserSession is set
// once a bearer token was accepted.
type imapSession struct {
	*imapmemserver.UserSession
	srv *IMAPServer
}

var _ imapserver.SessionSASL = (*imapSession)(nil)
var _ imapserver.SessionIMAP4rev2 = (*imapSession)(nil)

// errIMAPNoLogin refuses the LOGIN command, as Microsoft 365 and Google do
// since Basic auth was switched off.
var errIMAPNoLogin = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Code: imap.ResponseCodeAuthenticationFailed,
	Text: "LOGIN is disabled, use OAuth2",
}

// idleRecheck bounds how late IDLE reports a message that arrived while
// IDLE was starting. go-imap's SessionTracker.Idle registers for updates
// only after the server has sent "+ idling" and does not poll first, so such
// a message would wait for the next one (seen as a flaky IDLE test).
const idleRecheck = 5 * time.Second

// Idle polls, then idles, and polls again every idleRecheck.
func (sess *imapSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if sess.UserSession == nil {
		return nil
	}
	for {
		if err := sess.Poll(w, true); err != nil {
			return err
		}
		inner, done := make(chan struct{}), make(chan error, 1)
		go func() { done <- sess.UserSession.Idle(w, inner) }()
		t := time.NewTimer(idleRecheck)
		select {
		case <-stop:
			t.Stop()
			close(inner)
			return <-done
		case err := <-done:
			t.Stop()
			return err
		case <-t.C:
			close(inner)
			if err := <-done; err != nil {
				return err
			}
		}
	}
}

func (sess *imapSession) Login(username, password string) error {
	return errIMAPNoLogin
}

func (sess *imapSession) Close() error {
	if sess.UserSession == nil {
		return nil
	}
	return sess.UserSession.Close()
}

func (sess *imapSession) AuthenticateMechanisms() []string {
	return []string{proxy.XOAUTH2, sasl.OAuthBearer}
}

func (sess *imapSession) Authenticate(mech string) (sasl.Server, error) {
	switch strings.ToUpper(mech) {
	case proxy.XOAUTH2:
		return imapSASLServer{sess, NewXOAUTH2Server(sess.verify)}, nil
	case sasl.OAuthBearer:
		return imapSASLServer{sess, sasl.NewOAuthBearerServer(sess.verifyBearer)}, nil
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "unsupported mechanism"}
}

func (sess *imapSession) verify(user, token string) error {
	if err := sess.srv.opts.Verify(user, token); err != nil {
		return err
	}
	sess.UserSession = imapmemserver.NewUserSession(sess.srv.imapUser(user))
	return nil
}

func (sess *imapSession) verifyBearer(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
	if err := sess.verify(o.Username, o.Token); err != nil {
		return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
	}
	return nil
}

// imapSASLServer turns a failed login into NO [AUTHENTICATIONFAILED], as a
// real upstream answers, instead of imapserver's internal-error reply.
type imapSASLServer struct {
	sess *imapSession
	sasl.Server
}

func (s imapSASLServer) Next(resp []byte) ([]byte, bool, error) {
	ch, done, err := s.Server.Next(resp)
	var ie *imap.Error
	if err != nil && !errors.As(err, &ie) {
		s.sess.srv.opts.Logger.Info("devup imap: token refused", "proto", proxy.ProtoIMAP, "err", err)
		err = imapserver.ErrAuthFailed
	}
	return ch, done, err
}

// imapLogAdapter sends imapserver's Printf messages to slog.
type imapLogAdapter struct{ l *slog.Logger }

func (a imapLogAdapter) Printf(format string, args ...any) {
	a.l.Warn("devup imap: " + fmt.Sprintf(format, args...))
}
