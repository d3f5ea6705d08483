// Package proxy holds what every front end (IMAP, SMTP) shares: the login
// step (Gate: canonical mailbox, throttle, password check, session limits,
// session registry), the Authenticator and TokenSource it depends on, the
// upstream token login, SASL framing, the connection lifecycle (Front), TLS
// policy, PROXY protocol and the byte relay.
package proxy

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Protocol names, used as app-password scopes and as the log key "proto".
const (
	ProtoIMAP = "imap"
	ProtoSMTP = "smtp"
	ProtoPOP3 = "pop3"
)

// ErrAuthFailed means the credentials are not good: wrong, unknown, revoked,
// expired, empty, without the needed scope, or the mailbox must be re-linked.
// Clients get one fixed text for all of these (IMAP NO [AUTHENTICATIONFAILED],
// SMTP 535 5.7.8) so that the answer never tells which it was.
var ErrAuthFailed = errors.New("authentication failed")

// ErrUnavailable means a dependency (upstream, identity provider, store) is
// down or refusing for now; the client should retry later (IMAP
// NO [UNAVAILABLE], SMTP 454 4.7.0).
var ErrUnavailable = errors.New("temporarily unavailable")

// LoginRequest is what a client presented when it logged in.
type LoginRequest struct {
	Username string     // as sent by the client: the mailbox address
	Password string     // the app password
	Proto    string     // ProtoIMAP or ProtoSMTP: the scope required
	Remote   netip.Addr // client address, for throttling and "last used"
}

// Identity is an authenticated client.
type Identity struct {
	Mailbox    string // canonical (lower-case) mailbox address
	PasswordID string // id of the app password used, for revocation and logs
	// Expires is when the app password expires (zero: never); its sessions
	// end then.
	Expires time.Time
}

// Authenticator checks app passwords. Implementations must take the same time
// for an unknown user as for a wrong password. Errors wrap ErrAuthFailed or
// ErrUnavailable.
type Authenticator interface {
	Authenticate(ctx context.Context, req *LoginRequest) (*Identity, error)
}

// TokenSource hands out OAuth2 access tokens for upstream logins.
type TokenSource interface {
	// Token returns an access token for mailbox. Errors wrap ErrAuthFailed
	// when the mailbox needs to be re-linked, ErrUnavailable otherwise.
	Token(ctx context.Context, mailbox string) (string, error)
	// Invalidate drops token from the cache after the upstream refused it,
	// so that the next Token call fetches a fresh one.
	Invalidate(mailbox, token string)
}
