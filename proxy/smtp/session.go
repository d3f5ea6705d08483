package smtp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"mailgate/proxy"
)

// backend creates a session per EHLO/HELO for one listener mode.
type backend struct {
	srv  *Server
	mode proxy.TLSMode
}

var _ smtp.Backend = (*backend)(nil)

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	nc := c.Conn()
	_, isTLS := c.TLSConnectionState()
	s := &session{
		srv:     b.srv,
		nc:      nc,
		pc:      proxy.ConnOf(nc),
		secure:  isTLS || b.mode == proxy.TLSNone,
		remote:  proxy.RemoteAddr(nc),
		started: time.Now(),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.log = b.srv.log.With("remote", s.remote.String())
	if b.srv.shuttingDown() {
		s.end(true)
		return nil, errShuttingDown
	}
	s.pc.OnDrain(s.drain)
	return s, nil
}

// session is one client session between EHLO and the end of the connection
// (go-smtp starts a new one after STARTTLS). go-smtp calls its methods from
// the connection's goroutine, except Data for BDAT, which runs beside it;
// end may be called from anywhere.
type session struct {
	srv     *Server
	nc      net.Conn    // the client connection (TLS if any)
	pc      *proxy.Conn // nc as accepted, under any TLS
	secure  bool        // TLS, or a TLSNone listener
	remote  netip.Addr
	started time.Time
	log     *slog.Logger
	ctx     context.Context // cancelled when the session ends
	cancel  context.CancelFunc

	// login is the registered session of a successful AUTH; it ends (its
	// Context) when the password is revoked or expires.
	login *proxy.Session

	// relaying is held while Data uses the upstream, and by Reset.
	relaying sync.Mutex

	mu sync.Mutex
	up *upstream // nil before AUTH or after the upstream connection broke
	// stopWatch stops closing the session when login's Context ends.
	stopWatch func() bool
	inTx      bool // a MAIL was accepted and not yet finished or reset
	upTx      bool // the upstream has a transaction open
	inData    bool // Data is streaming
	ended     bool
	from      string
	rcpts     int
	msgs      int
}

var (
	_ smtp.Session     = (*session)(nil)
	_ smtp.AuthSession = (*session)(nil)
)

// AuthMechanisms hides AUTH until the connection is secure (docs/clients.md,
// "SMTP AUTH only after TLS").
func (s *session) AuthMechanisms() []string {
	if !s.secure {
		return nil
	}
	return []string{"PLAIN", proxy.Login}
}

// Auth answers AUTH PLAIN (RFC 4616) and AUTH LOGIN (Microsoft's profile,
// docs/clients.md, "Microsoft's AUTH LOGIN prompts"), both with or without an
// initial response.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.secure {
		return nil, errEncryptionRequired
	}
	switch mech {
	case "PLAIN":
		return fixedFailures{sasl.NewPlainServer(s.authenticate), s.authFailed}, nil
	case proxy.Login:
		return fixedFailures{proxy.NewLoginServer(s.authenticate), s.authFailed}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// authenticate counts failures; past proxy.MaxLoginFailures the connection
// gets 421 and is closed (RFC 4954 section 4 lets a server do so).
func (s *session) authenticate(identity, username, password string) error {
	err := s.authPlain(identity, username, password)
	if err == errAuthFailed || errors.Is(err, errThrottled) {
		s.authFailed()
	}
	if errors.Is(err, errThrottled) {
		return errTempAuth
	}
	return err
}

// authFailed counts one failed AUTH, whatever made it fail.
func (s *session) authFailed() {
	if s.pc.LoginFailed() {
		writeLine(s.nc, tooManyFailuresLine)
		s.closeConn()
	}
}

// errThrottled marks a refusal while locked out, which counts as a failure.
var errThrottled = fmt.Errorf("throttled: %w", errTempAuth)

// authPlain runs the shared login step, then logs in upstream at once, so
// that a mailbox that cannot send fails here and not at MAIL. A revoke or
// expiry during the upstream login fails the AUTH.
func (s *session) authPlain(identity, username, password string) error {
	if identity != "" && identity != username {
		s.log.Info("smtp sasl exchange failed", "user", proxy.LogSafe(username), "err", "authorization identity differs from user")
		return errAuthFailed
	}
	ctx, cancel := context.WithTimeout(s.ctx, loginTimeout)
	defer cancel()
	login, err := s.srv.opts.Gate.Login(ctx, &proxy.LoginRequest{
		Username: username, Password: password, Proto: proxy.ProtoSMTP, Remote: s.remote,
	})
	if errors.Is(err, proxy.ErrThrottled) {
		return errThrottled
	}
	if err != nil {
		return authReply(err)
	}
	upCtx, upCancel := context.WithTimeout(login.Context(), loginTimeout)
	defer upCancel()
	start := time.Now()
	up, err := s.srv.login(upCtx, login.Mailbox)
	s.srv.opts.Gate.UpstreamLogin(login, start, err)
	if lerr := login.Err(); lerr != nil { // revoked or expired meanwhile
		if err == nil {
			up.abort()
		}
		err = lerr
	}
	if err != nil {
		login.End()
		s.log.Warn("smtp upstream login failed", "user", login.Mailbox, "upstream", s.srv.opts.Upstream.Address, "err", err)
		return authReply(err)
	}
	if !s.setUpstream(up, login) {
		login.End()
		up.abort()
		return errTempAuth
	}
	s.pc.LoggedIn()
	s.log = s.log.With("user", login.Mailbox, "password_id", login.PasswordID)
	s.log.Info("smtp login", "upstream", s.srv.opts.Upstream.Address, "upstream_size", up.size)
	return nil
}

// setUpstream installs up unless the session has ended meanwhile. At AUTH
// it also takes the registered login, which is held until the session ends,
// across upstream reconnections (login nil), and ends the session when the
// login's Context ends.
func (s *session) setUpstream(up *upstream, login *proxy.Session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	s.up = up
	if login != nil {
		s.login = login
		s.stopWatch = context.AfterFunc(login.Context(), func() { s.end(false) })
	}
	return true
}

// releaseSession ends the registered login (its session slot, its place in
// the registry). It runs before the connection is closed, so that whoever
// waits for connections to end (Shutdown) never sees a registered session
// outlive its connection.
func (s *session) releaseSession() {
	s.mu.Lock()
	login, stop := s.login, s.stopWatch
	s.stopWatch = nil
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	if login != nil {
		login.End()
	}
}

func (s *session) Logout() error {
	s.cancel()
	s.mu.Lock()
	up, streaming := s.up, s.inData
	s.up, s.ended = nil, true
	s.mu.Unlock()
	if up != nil && streaming {
		up.abort() // BDAT's Data still writes to it: never send a final dot
	} else if up != nil {
		up.quit()
	}
	s.releaseSession()
	if s.login != nil {
		s.log.Info("smtp session end", "messages", s.msgs, "duration", time.Since(s.started).Round(time.Millisecond))
	}
	return nil
}

// end closes the client connection and the upstream at once, first sending
// 421 when say421 is set. Safe from any goroutine and more than once.
func (s *session) end(say421 bool) {
	s.cancel()
	s.mu.Lock()
	up := s.up
	s.up, s.ended = nil, true
	s.mu.Unlock()
	if say421 {
		writeLine(s.nc, shutdownLine)
	}
	if up != nil {
		up.abort()
	}
	s.releaseSession()
	s.closeConn()
}

// closeConn closes the client's TCP connection under any TLS, so that no
// close_notify can block on a client that does not read.
func (s *session) closeConn() {
	s.pc.Close()
}

// drain is what Shutdown asks the session (proxy.Conn.OnDrain): end now
// with 421 unless a transaction is open, which ends after its DATA reply or
// RSET (see Reset); with force, end at once.
func (s *session) drain(force bool) bool {
	s.mu.Lock()
	busy := s.inTx
	s.mu.Unlock()
	if busy && !force {
		return false
	}
	s.end(true)
	return true
}

// authReply maps an authentication error to its fixed reply.
func authReply(err error) error {
	if errors.Is(err, proxy.ErrAuthFailed) {
		return errAuthFailed
	}
	return errTempAuth
}
