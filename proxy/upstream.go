package proxy

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-sasl"
)

// Upstream describes the real mail server behind the proxy.
type Upstream struct {
	Address   string      // host:port
	TLS       TLSMode     // TLSImplicit or TLSStartTLS (TLSNone only in tests)
	Mechanism Mechanism   // MechXOAUTH2 (the zero value) or MechOAuthBearer
	TLSConfig *tls.Config // ServerName and RootCAs (system roots plus ca_file)
}

// Mechanism is the SASL mechanism that carries the OAuth2 token upstream.
type Mechanism string

// The two token mechanisms: XOAUTH2 (Google's and Microsoft's) and
// OAUTHBEARER (RFC 7628). The zero Mechanism means XOAUTH2.
const (
	MechXOAUTH2     Mechanism = XOAUTH2
	MechOAuthBearer Mechanism = sasl.OAuthBearer
)

// SASLClient returns the SASL client that logs in as mailbox with token, by
// the upstream's mechanism: the one place that chooses it.
func (u *Upstream) SASLClient(mailbox, token string) sasl.Client {
	if u.Mechanism == MechOAuthBearer {
		return sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: mailbox, Token: token})
	}
	return NewXOAUTH2Client(mailbox, token)
}

// AnswerChallenge answers an upstream's base64 SASL challenge during a
// token login. An error challenge (Gmail's and Dovecot's base64 JSON,
// docs/clients.md, "XOAUTH2 and its error challenge") gets an empty answer
// from the XOAUTH2 client; the OAUTHBEARER client refuses it, and RFC 7628
// section 3.2.3 says to answer with a lone ^A. The upstream then sends its
// final failure.
func AnswerChallenge(cl sasl.Client, challenge string) []byte {
	ch, _ := base64.StdEncoding.DecodeString(challenge)
	resp, err := cl.Next(ch)
	if err != nil {
		return []byte{1}
	}
	return resp
}

// LoginTimeout bounds a whole upstream login (dial, TLS, greeting,
// authentication) when the client's own pre-auth deadline is further away.
const LoginTimeout = 30 * time.Second

// LoginDeadline is when an upstream login must be done: LoginTimeout from
// now, or ctx's deadline if that comes first.
func LoginDeadline(ctx context.Context) time.Time {
	deadline := time.Now().Add(LoginTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return deadline
}

// OpenUpstream logs in upstream for sess with open, within sess's context
// and deadline (the client's pre-auth deadline): a revoke or expiry
// meanwhile fails the login with sess's error, and closeUp closes the
// connection open returned. The login is told to the Gate's Meter. Shared
// by the relaying front ends (IMAP, POP3).
func OpenUpstream[U any](g *Gate, sess *Session, deadline time.Time,
	open func(ctx context.Context, mailbox string) (U, error), closeUp func(U)) (U, error) {
	ctx, cancel := context.WithDeadline(sess.Context(), deadline)
	defer cancel()
	start := time.Now()
	up, err := open(ctx, sess.Mailbox)
	g.UpstreamLogin(sess, start, err)
	if serr := sess.Err(); serr != nil { // revoked or expired meanwhile
		if err == nil {
			closeUp(up)
		}
		var zero U
		return zero, serr
	}
	return up, err
}

// DialLogin connects to the upstream for a login (Dial) and arms the
// login's deadline (LoginDeadline) on the connection. Errors wrap
// ErrUnavailable.
func (u *Upstream) DialLogin(ctx context.Context) (net.Conn, error) {
	nc, err := u.Dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	nc.SetDeadline(LoginDeadline(ctx))
	return nc, nil
}

// LoginOn runs login, the authentication on nc, an upstream connection
// from DialLogin. When ctx ends first (revoke, deadline) nc is closed under
// it and the login fails with ctx's cause; on failure nc is closed. On
// success nc's deadline is cleared for what follows (the relay; SMTP's
// per-command timeouts). Shared by every front end.
func LoginOn(ctx context.Context, nc net.Conn, login func() error) error {
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	err := login()
	if !stop() && err == nil {
		err = fmt.Errorf("upstream login: %w: %w", ErrUnavailable, context.Cause(ctx))
	}
	if err != nil {
		nc.Close()
		return err
	}
	nc.SetDeadline(time.Time{})
	return nil
}

// DialTimeout bounds TCP connect plus the implicit TLS handshake to the
// upstream, so a dead upstream fails a login quickly (NO [UNAVAILABLE]).
const DialTimeout = 15 * time.Second

// KeepAlive is the TCP keepalive period for both legs of a session: IMAP
// sessions idle for 30 minutes and more (RFC 2177), and NAT boxes in between
// forget quiet flows long before that.
const KeepAlive = 2 * time.Minute

// Dial connects to the upstream and, for TLSImplicit, completes the TLS
// handshake. STARTTLS is the protocol package's job.
func (u *Upstream) Dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: KeepAlive}
	conn, err := d.DialContext(ctx, "tcp", u.Address)
	if err != nil {
		return nil, fmt.Errorf("dial upstream %s: %w", u.Address, err)
	}
	// Under the TLS (implicit, or the STARTTLS the front end starts), so
	// that the relay can send many records in one system call.
	conn = newBatchConn(conn)
	if u.TLS != TLSImplicit {
		return conn, nil
	}
	tc := tls.Client(conn, u.ClientTLS())
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("tls handshake with upstream %s: %w", u.Address, err)
	}
	return tc, nil
}

// ClientTLS returns the TLS client config for the upstream, with ServerName
// taken from Address when the config has none. A config that names its
// server is shared by every connection as it is (crypto/tls only reads
// it): each *tls.Conn keeps its config for its whole life, and a copy per
// relayed session was 600 bytes of an idle session's memory.
func (u *Upstream) ClientTLS() *tls.Config {
	if u.TLSConfig != nil && u.TLSConfig.ServerName != "" {
		return u.TLSConfig
	}
	cfg := &tls.Config{}
	if u.TLSConfig != nil {
		cfg = u.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(u.Address); err == nil {
			cfg.ServerName = host
		}
	}
	return cfg
}
