// Package smtp is mailgate's SMTP submission front end (RFC 6409). Clients
// authenticate with an app password (AUTH PLAIN or LOGIN, over TLS); the
// proxy then logs in to the upstream with an OAuth2 bearer token and relays
// every mail transaction over that one upstream connection, streaming the
// message and passing the upstream's replies back verbatim.
package smtp

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/emersion/go-smtp"

	"mailgate/proxy"
)

// Timeouts, from RFC 5321 section 4.5.3.2.
const (
	// defaultCommandTimeout is how long we wait for the next command and
	// for an upstream's reply to MAIL, RCPT and DATA (4.5.3.2.1-3, 4.5.3.2.7).
	defaultCommandTimeout = 5 * time.Minute
	// defaultWriteTimeout bounds writing one reply to a client that does
	// not read.
	defaultWriteTimeout = 5 * time.Minute
	// dataBlockTimeout is the longest pause inside DATA, per read from the
	// client and per write to the upstream (4.5.3.2.5).
	dataBlockTimeout = 3 * time.Minute
	// finalDotTimeout is how long the upstream may take to answer the final
	// dot (4.5.3.2.6).
	finalDotTimeout = 10 * time.Minute
	// loginTimeout bounds the upstream login (dial, EHLO, STARTTLS, AUTH)
	// while the client waits for its AUTH reply: the one bound every front end
	// uses.
	loginTimeout = proxy.LoginTimeout
	// quitTimeout bounds the polite QUIT to the upstream at the end.
	quitTimeout = 10 * time.Second
)

// maxLineLength replaces go-smtp's 2000: RFC 4954 section 4 lets an AUTH line
// carry 12288 octets (docs/clients.md, "OAuth tokens outgrow SMTP lines").
// go-smtp applies the same limit to message lines inside DATA, where RFC 5321's
// 1000 is often exceeded by real mail, so we allow a generous 64 KiB.
const maxLineLength = 64 << 10

// Options configures a Server. Gate, Tokens and Upstream are required; the
// other fields have defaults.
type Options struct {
	Gate      *proxy.Gate       // the shared login step (scope smtp)
	Tokens    proxy.TokenSource // upstream access tokens
	Upstream  proxy.Upstream    // the submission server behind us
	TLSConfig *tls.Config       // server side; needed unless every listener is TLSNone
	Limits    *proxy.Limits     // connections per network and in total; nil means none
	Logger    *slog.Logger      // nil means slog.Default
	Hostname  string            // greeting and EHLO name; "" means os.Hostname

	// MaxMessageBytes caps a message. 0 means the upstream's SIZE.
	//
	// EHLO comes before AUTH, so when we advertise SIZE we do not yet know
	// which upstream limit applies, and go-smtp enforces whatever number it
	// advertises. Guessing a number (say 35 MB) would cut off upstreams
	// that allow 150 MB. So with 0 we advertise "SIZE" without a number
	// (RFC 1870 section 4: no fixed maximum announced) and enforce the
	// upstream's SIZE, learned at AUTH, at MAIL (SIZE=) and during DATA with
	// 552 5.3.4. A non-zero value is advertised and enforced as well.
	MaxMessageBytes int64

	// PreAuthTimeout bounds the whole time from connect to a successful
	// AUTH (proxy.DefaultPreAuthTimeout): go-smtp's ReadTimeout applies per
	// command, so without it a client could keep an unauthenticated
	// connection with a NOOP a minute.
	PreAuthTimeout time.Duration
	// HandshakeTimeout bounds each TLS handshake
	// (proxy.DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration

	// ReadTimeout is the wait for each command (default 5 minutes, RFC 5321
	// section 4.5.3.2.7); it does not cover a whole DATA transfer, which gets
	// dataBlockTimeout per read instead. WriteTimeout bounds each reply.
	ReadTimeout, WriteTimeout time.Duration

	// Messages is told of every message's result and size (metrics); nil
	// means none.
	Messages MessageMeter
}

// Server is the SMTP submission proxy. It may serve several listeners.
type Server struct {
	opts  Options
	log   *slog.Logger
	front *proxy.Front
}

// New returns a Server; call Serve for each listener.
func New(opts *Options) *Server {
	s := &Server{opts: *opts}
	o := &s.opts
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	if o.Hostname == "" {
		o.Hostname = "localhost"
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = defaultCommandTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = defaultWriteTimeout
	}
	if o.Messages == nil {
		o.Messages = nopMessages{}
	}
	s.front = proxy.NewFront(&proxy.FrontOptions{
		Proto: proxy.ProtoSMTP, Limits: o.Limits, PreAuthTimeout: o.PreAuthTimeout, HandshakeTimeout: o.HandshakeTimeout,
		TLSConfig: o.TLSConfig, RefuseLine: tooManyConnsLine, Meter: o.Gate.Meter(), Logger: o.Logger,
	})
	s.log = o.Logger.With("proto", proxy.ProtoSMTP)
	return s
}

// Serve accepts connections on ln until Close or Shutdown, then returns nil.
// mode says how clients get TLS: TLSImplicit (465), TLSStartTLS (587) or
// TLSNone (loopback and tests; treated as secure).
func (s *Server) Serve(ln net.Listener, mode proxy.TLSMode) error {
	if err := s.front.CheckMode(mode); err != nil {
		return err
	}
	l, done, ok := s.front.Listener(ln, mode)
	if !ok {
		return nil
	}
	defer done()
	err := s.newGoSMTP(mode).Serve(l)
	if s.front.Closed() {
		return nil
	}
	return err
}

// newGoSMTP returns the go-smtp server for one listener mode.
func (s *Server) newGoSMTP(mode proxy.TLSMode) *smtp.Server {
	gs := smtp.NewServer(&backend{srv: s, mode: mode})
	gs.Domain = s.opts.Hostname
	gs.MaxLineLength = maxLineLength
	gs.MaxMessageBytes = s.opts.MaxMessageBytes
	// We refuse AUTH before TLS ourselves, with 538 5.7.11 (see
	// errEncryptionRequired), and hide AUTH from EHLO until then.
	gs.AllowInsecureAuth = true
	gs.ReadTimeout = s.opts.ReadTimeout
	gs.WriteTimeout = s.opts.WriteTimeout
	gs.ErrorLog = errorLog{s.log}
	if mode != proxy.TLSNone {
		gs.TLSConfig = s.opts.TLSConfig
	}
	return gs
}

// Close stops accepting connections; Serve returns nil. Live sessions go on.
func (s *Server) Close() error {
	return s.front.Close()
}

// Shutdown stops accepting connections, sends 421 to every session that is
// between transactions and closes it, lets transactions in progress finish
// (each session ends after its DATA reply or RSET), and when ctx ends, sends
// 421 to whatever is left and closes it, upstream included.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.front.Shutdown(ctx)
}

func (s *Server) shuttingDown() bool { return s.front.Draining() }
