package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"mailgate/proxy"
)

// HTTP timeouts. ReadHeaderTimeout is what the pre-auth deadline is to
// IMAP: a client that trickles its request line is cut within seconds.
// IdleTimeout lets a browser keep its connection between clicks.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 32 << 10 // a session cookie and a browser's usual headers fit many times
)

type connKey struct{}

func (s *Server) newHTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// TLS handshake failures and the like: debug, they are noise.
		ErrorLog: slog.NewLogLogger(s.log.With("proto", "web").Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
}

// Serve serves the portal on ln, a listener of mode TLSImplicit (with
// Options.TLSConfig) or TLSNone, until Close or Shutdown; then it returns
// nil. Connections go through the shared lifecycle (proxy.Front): the
// connection limits, their accounting, the TLS handshake deadline.
//
// The Front's pre-auth deadline (60 s to log in) stays armed on a
// connection until one of its requests carries a valid session (see
// loggedIn): a connection nobody signs in on, a browser's speculative
// preconnect or a scanner, is closed then, as an IMAP client that never
// logs in would be, and a browser just opens another. A signed-in
// browser's connection then lives by the HTTP timeouts above and is never
// dropped to make room for new connections.
func (s *Server) Serve(ln net.Listener, mode proxy.TLSMode) error {
	if mode != proxy.TLSImplicit && mode != proxy.TLSNone {
		ln.Close()
		return fmt.Errorf("web: tls mode %s: want implicit or none", mode)
	}
	if err := s.front.CheckMode(mode); err != nil {
		ln.Close()
		return err
	}
	l, done, ok := s.front.Listener(ln, mode)
	if !ok {
		return nil
	}
	defer done()
	err := s.http.Serve(l)
	if s.front.Closed() || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops accepting on every listener; requests being served, and
// the connections they came on, go on.
func (s *Server) Close() error { return s.front.Close() }

// Shutdown stops accepting, lets requests in flight finish and closes idle
// connections; when ctx ends first, it closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	return errors.Join(err, s.front.Shutdown(ctx))
}

// loggedIn marks the request's connection as a session once a request on
// it carries a valid session, so that the pre-auth deadline does not cut a
// signed-in browser (see Serve).
func loggedIn(r *http.Request) {
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		if pc := proxy.ConnOf(c); pc != nil {
			pc.LoggedIn()
		}
	}
}

// clientIP is the client's address: from the Front (PROXY protocol
// applied) when the request came through Serve, else from the request.
func clientIP(r *http.Request) netip.Addr {
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		if pc := proxy.ConnOf(c); pc != nil {
			return pc.Remote()
		}
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func ipString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
