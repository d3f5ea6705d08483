// Package pop3 is mailgate's POP3 front end: it speaks POP3 with the client
// up to authentication (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034
// AUTH), checks the app password, logs in upstream with an OAuth2 token and
// then relays the session byte for byte.
package pop3

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
	// DefaultMaxLine bounds a pre-auth command line. RFC 2449 section 4
	// allows 255 octets per command, and RFC 5034 section 4 raises that
	// for AUTH responses; 8 KiB holds any app password in base64.
	DefaultMaxLine = 8192
	// DefaultIdleTimeout ends relayed sessions after this long without
	// traffic: longer than RFC 1939 section 3's minimum autologout timer of
	// 10 minutes, so that the upstream's own timer normally decides.
	DefaultIdleTimeout = 11 * time.Minute
	// DefaultShutdownQuiet is how long the upstream must have sent nothing
	// to a relayed client before Shutdown closes the session (see
	// proxy.QuietConn). Closing without QUIT loses no committed deletion
	// (RFC 1939 section 6).
	DefaultShutdownQuiet = proxy.DefaultShutdownQuiet
)

// Options configures a Server. Zero fields get the defaults above.
type Options struct {
	// Gate is the shared login step (throttle, password check, session
	// limits and registry); required.
	Gate     *proxy.Gate
	Tokens   proxy.TokenSource
	Upstream proxy.Upstream
	// TLSConfig is the server side TLS config (certificates via
	// GetCertificate); required for implicit TLS and STLS listeners.
	TLSConfig *tls.Config
	// Limits bounds connections per network and in total (shared with the
	// other front ends); nil means none.
	Limits   *proxy.Limits
	Logger   *slog.Logger
	Hostname string // in the greeting

	MaxLine int
	// PreAuthTimeout bounds the time before login (proxy.DefaultPreAuthTimeout).
	PreAuthTimeout time.Duration
	// HandshakeTimeout bounds each TLS handshake
	// (proxy.DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration

	IdleTimeout time.Duration
	// ShutdownQuiet is how long the upstream must be silent before
	// Shutdown closes a relayed session (DefaultShutdownQuiet).
	ShutdownQuiet time.Duration
}

// Server is the POP3 front end. One Server can serve several listeners.
type Server struct {
	opts  Options
	log   *slog.Logger
	front *proxy.Front
}

// New returns a Server; call Serve for each listener.
func New(opts *Options) *Server {
	s := &Server{opts: *opts}
	o := &s.opts
	o.MaxLine = proxy.OrDefault(o.MaxLine, DefaultMaxLine)
	o.PreAuthTimeout = proxy.OrDefault(o.PreAuthTimeout, proxy.DefaultPreAuthTimeout)
	o.IdleTimeout = proxy.OrDefault(o.IdleTimeout, DefaultIdleTimeout)
	o.ShutdownQuiet = proxy.OrDefault(o.ShutdownQuiet, DefaultShutdownQuiet)
	if o.Hostname == "" {
		o.Hostname = "localhost"
	}
	s.front = proxy.NewFront(&proxy.FrontOptions{
		Proto: proxy.ProtoPOP3, Limits: o.Limits, PreAuthTimeout: o.PreAuthTimeout, HandshakeTimeout: o.HandshakeTimeout,
		TLSConfig: o.TLSConfig, RefuseLine: "-ERR [SYS/TEMP] Too many connections, try again later\r\n",
		DrainEvery: proxy.DrainEvery(o.ShutdownQuiet),
		Meter:      o.Gate.Meter(), Logger: o.Logger,
	})
	s.log = s.front.Logger()
	return s
}

// Serve accepts connections on ln until Close or Shutdown, then returns nil.
// For proxy.TLSImplicit it wraps ln in TLS itself; proxy.TLSStartTLS means
// STLS (RFC 2595 section 4).
func (s *Server) Serve(ln net.Listener, mode proxy.TLSMode) error {
	return s.front.Serve(ln, mode, func(nc net.Conn) { s.serveConn(nc, mode) })
}

// Close stops accepting on every listener. Sessions, logged in or not, go on.
func (s *Server) Close() error { return s.front.Close() }

// Shutdown stops accepting, drops connections that have not logged in,
// closes relayed sessions as soon as the upstream is quiet (POP3 has no
// unsolicited goodbye; the client sees the connection close, and deletions
// it did not commit with QUIT are not applied), and closes those still open
// when ctx ends. It returns ctx's error if it had to force sessions closed.
func (s *Server) Shutdown(ctx context.Context) error { return s.front.Shutdown(ctx) }
