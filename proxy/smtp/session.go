package smtp

import (
	"context"
	"errors"
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
		tc:      tracked(nc),
		secure:  isTLS || b.mode == proxy.TLSNone,
		remote:  remoteAddr(nc),
		started: time.Now(),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.log = b.srv.log.With("remote", s.remote.String())
	if s.tc != nil {
		s.tc.sess.Store(s)
	}
	if b.srv.shuttingDown() {
		s.end(true)
		return nil, errShuttingDown
	}
	return s, nil
}

// session is one client session between EHLO and the end of the connection
// (go-smtp starts a new one after STARTTLS). go-smtp calls its methods from
// the connection's goroutine, except Data for BDAT, which runs beside it;
// end may be called from anywhere.
type session struct {
	srv     *Server
	nc      net.Conn     // the client connection (TLS if any)
	tc      *trackedConn // nc's tracked base
	secure  bool         // TLS, or a TLSNone listener
	remote  netip.Addr
	started time.Time
	log     *slog.Logger
	ctx     context.Context // cancelled when the session ends
	cancel  context.CancelFunc

	id           *proxy.Identity // set by AUTH
	untrack      func()
	authFailures int

	// relaying is held while Data uses the upstream, and by Reset.
	relaying sync.Mutex

	mu sync.Mutex
	up *upstream // nil before AUTH or after the upstream connection broke
	// releaseSlot frees the upstream session's slot in Limits.
	releaseSlot func()
	inTx        bool // a MAIL was accepted and not yet finished or reset
	upTx        bool // the upstream has a transaction open
	inData      bool // Data is streaming
	ended       bool
	from        string
	rcpts       int
	msgs        int
}

var (
	_ smtp.Session     = (*session)(nil)
	_ smtp.AuthSession = (*session)(nil)
)

// AuthMechanisms hides AUTH until the connection is secure (field note 16).
func (s *session) AuthMechanisms() []string {
	if !s.secure {
		return nil
	}
	return []string{"PLAIN", proxy.Login}
}

// Auth answers AUTH PLAIN (RFC 4616) and AUTH LOGIN (Microsoft's profile,
// field note 15), both with or without an initial response.
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

// maxAuthFailures is how many failed AUTHs one session gets. offlineimap
// spends two on one wrong password (field note 29), so it must be at least 3.
const maxAuthFailures = 5

// authenticate counts failures; the last one allowed gets 421 and the
// connection is closed (RFC 4954 section 4 lets a server do so).
func (s *session) authenticate(identity, username, password string) error {
	err := s.authPlain(identity, username, password)
	if err == errAuthFailed {
		s.authFailed()
	}
	return err
}

// authFailed counts one failed AUTH, whatever made it fail.
func (s *session) authFailed() {
	s.authFailures++
	if s.authFailures >= maxAuthFailures {
		writeLine(s.nc, tooManyFailuresLine)
		s.closeConn()
	}
}

// authPlain checks the app password, then logs in upstream at once, so that
// a mailbox that cannot send fails here and not at MAIL.
func (s *session) authPlain(identity, username, password string) error {
	log := s.log.With("user", username)
	if identity != "" && identity != username {
		log.Info("smtp sasl exchange failed", "err", "authorization identity differs from user")
		return errAuthFailed
	}
	ctx, cancel := context.WithTimeout(s.ctx, loginTimeout)
	defer cancel()
	id, err := s.checkPassword(ctx, username, password)
	if err != nil {
		return authReply(err)
	}
	release, ok := s.srv.opts.Limits.Session(proxy.ProtoSMTP, id.Mailbox)
	if !ok {
		log.Warn("login refused: too many upstream sessions")
		return errTempAuth
	}
	up, err := s.srv.login(ctx, id.Mailbox)
	if err != nil {
		release()
		log.Warn("smtp upstream login failed", "upstream", s.srv.opts.Upstream.Address, "err", err)
		return authReply(err)
	}
	if !s.setUpstream(up, release) {
		release()
		up.abort()
		return errTempAuth
	}
	if s.tc != nil {
		s.tc.authed.Store(true)
	}
	s.id = id
	s.log = s.log.With("user", id.Mailbox, "password_id", id.PasswordID)
	untrack := s.srv.opts.Tracker.Add(&proxy.Session{
		Proto: proxy.ProtoSMTP, Mailbox: id.Mailbox, PasswordID: id.PasswordID,
		Remote: s.remote, Started: time.Now(), Close: func() { s.end(false) },
	})
	s.mu.Lock()
	s.untrack = untrack
	s.mu.Unlock()
	s.log.Info("smtp login", "upstream", s.srv.opts.Upstream.Address, "upstream_size", up.size)
	return nil
}

// checkPassword asks the Authenticator with the throttle around it: a
// network or mailbox that failed too often is refused without a check, and
// a failure's reply waits. "login failed" is the line fail2ban matches
// (README, Security); it is logged with the server's logger so that its
// keys come in a fixed order: proto, remote, user.
func (s *session) checkPassword(ctx context.Context, user, pass string) (*proxy.Identity, error) {
	th, log := s.srv.opts.Throttle, s.srv.log
	if err := th.Check(s.remote, user); err != nil {
		log.Warn("login refused: throttled", "remote", s.remote, "user", user)
		return nil, err
	}
	id, err := s.srv.opts.Authenticator.Authenticate(ctx, &proxy.LoginRequest{
		Username: user, Password: pass, Proto: proxy.ProtoSMTP, Remote: s.remote,
	})
	switch {
	case err == nil:
		th.Success(s.remote, user)
	case errors.Is(err, proxy.ErrAuthFailed):
		proxy.Sleep(ctx, th.Failure(s.remote, user))
		log.Warn("login failed", "remote", s.remote, "user", user, "err", err)
	default:
		log.Warn("login unavailable", "remote", s.remote, "user", user, "err", err)
	}
	return id, err
}

// setUpstream installs up unless the session has ended meanwhile. At AUTH
// it also takes the session's slot in Limits (release), which is held until
// the session ends, across upstream reconnections (release nil).
func (s *session) setUpstream(up *upstream, release func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	s.up = up
	if release != nil {
		s.releaseSlot = release
	}
	return true
}

// releaseSession frees the session's Limits slot, once.
// releaseSession gives back the session's upstream slot and leaves the
// tracker. It runs before the connection is closed, so that whoever waits
// for connections to end (Shutdown) never sees a tracked session outlive
// its connection.
func (s *session) releaseSession() {
	s.mu.Lock()
	release, untrack := s.releaseSlot, s.untrack
	s.releaseSlot, s.untrack = nil, nil
	s.mu.Unlock()
	if release != nil {
		release()
	}
	if untrack != nil {
		untrack()
	}
}

func (s *session) Logout() error {
	s.cancel()
	if s.tc != nil {
		s.tc.sess.CompareAndSwap(s, nil)
	}
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
	if s.id != nil {
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
	if s.tc != nil {
		s.tc.Close()
		return
	}
	s.nc.Close()
}

// endIfIdle ends the session for Shutdown unless a transaction is open.
func (s *session) endIfIdle() {
	s.mu.Lock()
	busy := s.inTx
	s.mu.Unlock()
	if !busy {
		s.end(true)
	}
}

func remoteAddr(nc net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// authReply maps an authentication error to its fixed reply.
func authReply(err error) error {
	if errors.Is(err, proxy.ErrAuthFailed) {
		return errAuthFailed
	}
	return errTempAuth
}
