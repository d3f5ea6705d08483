// Package imap is mailgate's IMAP front end: it speaks IMAP with the client
// up to authentication, checks the app password, logs in upstream with an
// OAuth2 token and then relays the session byte for byte.
package imap

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"time"

	"mailgate/proxy"
)

// Defaults for the zero fields of Options.
const (
	// DefaultMaxLine bounds a pre-auth command line; RFC 2683 section
	// 3.2.1.5 asks servers to accept at least 8000 octets.
	DefaultMaxLine = 8192
	// DefaultMaxLiteral bounds a pre-auth literal (a user name or password).
	DefaultMaxLiteral = 8192
	// DefaultIdleTimeout ends relayed sessions after this long without traffic:
	// more than RFC 3501 section 5.4's 30 minutes, so that RFC 2177's re-IDLE
	// every 29 minutes keeps a session alive (docs/clients.md, "Clients idle
	// long and keep several connections").
	DefaultIdleTimeout = 31 * time.Minute
)

// Options configures a Server. Zero fields get the defaults above.
type Options struct {
	// Gate is the shared login step (throttle, password check, session
	// limits and registry); required.
	Gate     *proxy.Gate
	Tokens   proxy.TokenSource
	Upstream proxy.Upstream
	// TLSConfig is the server side TLS config (certificates via
	// GetCertificate); required for implicit and STARTTLS listeners.
	TLSConfig *tls.Config
	// Limits bounds connections per network and in total (shared with the
	// other front ends); nil means none.
	Limits   *proxy.Limits
	Logger   *slog.Logger
	Hostname string // in the greeting

	MaxLine, MaxLiteral int
	// PreAuthTimeout bounds the time before login (proxy.DefaultPreAuthTimeout).
	PreAuthTimeout time.Duration
	// HandshakeTimeout bounds each TLS handshake
	// (proxy.DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration

	IdleTimeout time.Duration
	// ShutdownQuiet is how long the upstream must be silent before
	// Shutdown ends a relayed session with BYE (DefaultShutdownQuiet).
	ShutdownQuiet time.Duration

	// WarmUpstreams is how many upstream connections (connected, TLS done,
	// greeting read) wait for the next login; 0 means none. With the
	// upstream far away this saves the TCP and TLS round trips of a login.
	// The pool only fills after a client passed the app-password check.
	WarmUpstreams int
	// WarmMaxAge is how long a warm connection waits; default
	// DefaultWarmMaxAge.
	WarmMaxAge time.Duration
}

// Server is the IMAP front end. One Server can serve several listeners.
type Server struct {
	opts  Options
	log   *slog.Logger
	front *proxy.Front
	// warm holds pre-authentication upstream connections; nil when
	// Options.WarmUpstreams is 0.
	warm *warmPool
}

// New returns a Server; call Serve for each listener.
func New(opts *Options) *Server {
	s := &Server{opts: *opts}
	o := &s.opts
	o.MaxLine = proxy.OrDefault(o.MaxLine, DefaultMaxLine)
	o.MaxLiteral = proxy.OrDefault(o.MaxLiteral, DefaultMaxLiteral)
	o.PreAuthTimeout = proxy.OrDefault(o.PreAuthTimeout, proxy.DefaultPreAuthTimeout)
	o.IdleTimeout = proxy.OrDefault(o.IdleTimeout, DefaultIdleTimeout)
	o.ShutdownQuiet = proxy.OrDefault(o.ShutdownQuiet, DefaultShutdownQuiet)
	if o.Hostname == "" {
		o.Hostname = "localhost"
	}
	s.front = proxy.NewFront(&proxy.FrontOptions{
		Proto: proxy.ProtoIMAP, Limits: o.Limits, PreAuthTimeout: o.PreAuthTimeout, HandshakeTimeout: o.HandshakeTimeout,
		TLSConfig: o.TLSConfig, RefuseLine: "* BYE Too many connections, try again later\r\n",
		DrainEvery: proxy.DrainEvery(o.ShutdownQuiet),
		Meter:      o.Gate.Meter(), Logger: o.Logger,
	})
	s.log = s.front.Logger()
	if o.WarmUpstreams > 0 {
		s.warm = &warmPool{size: o.WarmUpstreams, maxAge: proxy.OrDefault(o.WarmMaxAge, DefaultWarmMaxAge),
			dial: func(ctx context.Context) (*upConn, error) { return dialUpstream(ctx, &s.opts.Upstream) }}
	}
	return s
}

// Serve accepts connections on ln until Close or Shutdown, then returns nil.
// For TLSImplicit it wraps ln in TLS itself.
func (s *Server) Serve(ln net.Listener, mode proxy.TLSMode) error {
	return s.front.Serve(ln, mode, func(nc net.Conn) { s.serveConn(nc, mode) })
}

// Close stops accepting on every listener. Sessions, logged in or not, go on.
func (s *Server) Close() error {
	s.warm.close()
	return s.front.Close()
}

// Shutdown stops accepting, drops connections that have not logged in, ends
// relayed sessions with "* BYE" as soon as the upstream is quiet (so that
// clients reconnect at once, RFC 3501 section 7.1.5, and no response is cut
// in half), and closes those still open when ctx ends. It returns ctx's
// error if it had to close sessions.
func (s *Server) Shutdown(ctx context.Context) error {
	s.warm.close()
	return s.front.Shutdown(ctx)
}
