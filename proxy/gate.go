package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"time"
	"unicode"

	"mailgate/store"
)

// MaxLoginFailures is how many failed logins one connection may have, in
// every protocol; the next failure ends the connection. offlineimap spends
// two attempts on one wrong password (docs/clients.md), so it must be at
// least 3. Refusals while the client is locked out count too.
const MaxLoginFailures = 3

// ErrSessionLimit refuses a login because the mailbox already has as many
// upstream sessions of the protocol as Limits allows. Clients are told to
// retry later.
var ErrSessionLimit = fmt.Errorf("too many upstream sessions for the mailbox: %w", ErrUnavailable)

// GateOptions configures a Gate. Authenticator is required; nil Throttle
// and Limits mean none, nil Sessions a private Registry.
type GateOptions struct {
	Authenticator Authenticator
	Throttle      *Throttle
	Limits        *Limits
	Sessions      *Registry
	// Meter is told of every login and session, for metrics; nil: none.
	Meter  Meter
	Logger *slog.Logger
}

// Gate is the login step every front end uses, in this order: canonical
// mailbox, throttle, password check, per-mailbox session limit, session
// registration, log line. Front ends only parse their wire format and call
// Login. One Gate is shared by all front ends, so a guesser gains nothing by
// switching protocol.
type Gate struct {
	o     GateOptions
	log   *slog.Logger
	meter Meter
}

// NewGate returns a Gate.
func NewGate(opts *GateOptions) *Gate {
	g := &Gate{o: *opts, log: opts.Logger, meter: orNop(opts.Meter)}
	if g.o.Sessions == nil {
		g.o.Sessions = &Registry{}
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	return g
}

// Sessions returns the registry the Gate registers sessions with.
func (g *Gate) Sessions() *Registry { return g.o.Sessions }

// Login checks req and registers its session. Errors wrap ErrAuthFailed
// (the client gets the fixed failure reply and one more failure counts
// against its connection) or ErrUnavailable (throttled, session limit,
// store down: try later). The caller must End the session.
//
// "login failed" is the line fail2ban matches (docs/security.md); its keys
// come in a fixed order: proto, remote, user.
func (g *Gate) Login(ctx context.Context, req *LoginRequest) (*Session, error) {
	mailbox, merr := store.CanonicalMailbox(req.Username)
	if err := g.o.Throttle.Check(req.Remote, mailbox); err != nil {
		g.logf(slog.LevelWarn, "login refused: throttled", req, req.Username, "")
		g.meter.Login(req.Proto, LoginThrottled)
		return nil, err
	}
	if merr != nil || req.Password == "" {
		// Counted against the client's network like a wrong password, but
		// never looked up.
		err := fmt.Errorf("%w: malformed user name or empty password", ErrAuthFailed)
		return nil, g.failed(ctx, req, mailbox, req.Username, err)
	}
	seq := g.o.Sessions.Seq()
	canon := *req
	canon.Username = mailbox
	id, err := g.o.Authenticator.Authenticate(ctx, &canon)
	if err != nil {
		return nil, g.failed(ctx, req, mailbox, mailbox, err)
	}
	g.o.Throttle.Success(req.Remote, mailbox)
	return g.register(req, id, seq)
}

// failed logs a refused password check and, for a wrong password, counts
// it and waits the throttle's delay (as Dovecot's auth_failure_delay does).
// user is what the log line shows.
func (g *Gate) failed(ctx context.Context, req *LoginRequest, mailbox, user string, err error) error {
	if !errors.Is(err, ErrAuthFailed) {
		g.logf(slog.LevelWarn, "login unavailable", req, user, err.Error())
		g.meter.Login(req.Proto, LoginUnavailable)
		return err
	}
	Sleep(ctx, g.o.Throttle.Failure(req.Remote, mailbox))
	g.logf(slog.LevelWarn, "login failed", req, user, err.Error())
	g.meter.Login(req.Proto, LoginFailed)
	return err
}

// register takes a session slot and registers the session.
func (g *Gate) register(req *LoginRequest, id *Identity, seq uint64) (*Session, error) {
	release, ok := g.o.Limits.Session(req.Proto, id.Mailbox)
	if !ok {
		g.logf(slog.LevelWarn, "login refused: too many upstream sessions", req, id.Mailbox, "")
		g.meter.Login(req.Proto, LoginLimit)
		return nil, ErrSessionLimit
	}
	s := &Session{Proto: req.Proto, Mailbox: id.Mailbox, PasswordID: id.PasswordID,
		Remote: req.Remote, Started: time.Now(), Expires: id.Expires}
	if !g.o.Sessions.Register(s, seq) {
		release()
		g.logf(slog.LevelWarn, "login failed", req, id.Mailbox, "password revoked during login")
		g.meter.Login(req.Proto, LoginFailed)
		return nil, fmt.Errorf("%w: %w", ErrAuthFailed, ErrRevoked)
	}
	s.OnEnd(release)
	g.meter.Login(req.Proto, LoginOK)
	g.meter.Sessions(req.Proto, 1)
	s.OnEnd(func() { g.meter.Sessions(req.Proto, -1) })
	return s, nil
}

func (g *Gate) logf(level slog.Level, msg string, req *LoginRequest, user, err string) {
	attrs := []any{"proto", req.Proto, "remote", addrString(req.Remote), "user", LogSafe(user)}
	if err != "" {
		attrs = append(attrs, "err", err)
	}
	g.log.Log(context.Background(), level, msg, attrs...)
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// maxLogLen bounds a client-chosen string (user name, client name) in a
// log line.
const maxLogLen = 64

// LogSafe prepares a string a client chose for a log line: cut to 64 bytes
// and quoted when it holds anything unprintable, so that it cannot forge
// lines or fields.
func LogSafe(s string) string {
	if len(s) > maxLogLen {
		s = s[:maxLogLen]
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
