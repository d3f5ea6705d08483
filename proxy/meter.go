package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"time"
)

// Login results, as Meter.Login is told them: the fixed label values of
// the login metric.
const (
	LoginOK          = "ok"          // password checked, session registered
	LoginFailed      = "failed"      // wrong, unknown, malformed, revoked
	LoginThrottled   = "throttled"   // refused unchecked: the client is locked out
	LoginUnavailable = "unavailable" // the store or another dependency failed
	LoginLimit       = "limit"       // the mailbox has all its sessions already
)

// Upstream error kinds, as UpstreamErrorKind names them: the fixed label
// values of the upstream error metric.
const (
	UpstreamDial     = "dial"     // TCP connect failed (refused, no route)
	UpstreamTLS      = "tls"      // handshake or certificate failed
	UpstreamTimeout  = "timeout"  // the login deadline passed
	UpstreamRefused  = "refused"  // the upstream refused the token or the mailbox
	UpstreamProtocol = "protocol" // anything else: a broken reply, NO [UNAVAILABLE], a reset
)

// UpstreamErrorKinds are every kind UpstreamErrorKind returns.
var UpstreamErrorKinds = []string{UpstreamDial, UpstreamTLS, UpstreamTimeout, UpstreamRefused, UpstreamProtocol}

// LoginResults are every result Meter.Login is told.
var LoginResults = []string{LoginOK, LoginFailed, LoginThrottled, LoginUnavailable, LoginLimit}

// Meter is told what the login step and the connection lifecycle do, for
// metrics (proxy/metrics implements it). It is called on every login and
// connection, so its methods must be cheap, never block and take no lock
// shared by all sessions. A nil Meter in the Options means none.
type Meter interface {
	// Login counts one Gate.Login by its result (LoginOK...).
	Login(proto, result string)
	// Sessions moves the count of registered sessions by delta.
	Sessions(proto string, delta int)
	// PreAuth moves the count of connections that have not logged in.
	PreAuth(proto string, delta int)
	// UpstreamLogin is told of one upstream login that had a token: how
	// long it took and its error (nil: it worked).
	UpstreamLogin(proto string, took time.Duration, err error)
	// Relay returns the byte counters of proto's relayed sessions.
	Relay(proto string) RelayCounters
}

// nopMeter is the Meter of Options without one.
type nopMeter struct{}

func (nopMeter) Login(string, string)                       {}
func (nopMeter) Sessions(string, int)                       {}
func (nopMeter) PreAuth(string, int)                        {}
func (nopMeter) UpstreamLogin(string, time.Duration, error) {}
func (nopMeter) Relay(string) RelayCounters                 { return RelayCounters{} }

// orNop returns m, or a Meter that does nothing for nil.
func orNop(m Meter) Meter {
	if m == nil {
		return nopMeter{}
	}
	return m
}

// Meter returns the Gate's Meter (a no-op one when GateOptions had none,
// nil for a nil Gate), for the front ends to hand to their Front.
func (g *Gate) Meter() Meter {
	if g == nil {
		return nil
	}
	return g.meter
}

// UpstreamLogin tells the Gate's Meter of sess's upstream login, which
// began at start and ended with err. A login that got no token (the
// identity provider's failure, counted by the token metrics) or that was
// cut because the session ended (revoked, expired, stopping) is not the
// upstream's and is not told.
func (g *Gate) UpstreamLogin(sess *Session, start time.Time, err error) {
	if errors.Is(err, errNoToken) || sess.Err() != nil {
		return
	}
	g.meter.UpstreamLogin(sess.Proto, time.Since(start), err)
}

// UpstreamErrorKind sorts an upstream login error into one of
// UpstreamErrorKinds, by the error types under it (the front ends wrap
// them with %w), never by its text.
func UpstreamErrorKind(err error) string {
	var ne net.Error
	var op *net.OpError
	switch {
	case errors.Is(err, ErrAuthFailed):
		return UpstreamRefused
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return UpstreamTimeout
	case isTLSError(err):
		return UpstreamTLS
	case errors.As(err, &op) && op.Op == "dial":
		return UpstreamDial
	}
	return UpstreamProtocol
}

func isTLSError(err error) bool {
	var alert tls.AlertError
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &alert) || errors.As(err, &verify) || errors.As(err, &record) ||
		errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid)
}
