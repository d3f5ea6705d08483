// Package imap is mailgate's IMAP front end: it speaks IMAP with the client
// up to authentication, checks the app password, logs in upstream with an
// OAuth2 token and then relays the session byte for byte.
package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
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
	// DefaultMaxFailures is how many failed logins a connection may have; the
	// next one ends it. offlineimap spends two on one wrong password (field
	// note 29), so it must be at least 3.
	DefaultMaxFailures = 3
	// DefaultPreAuthTimeout bounds the whole time before authentication. RFC
	// 3501 section 5.4's 30-minute autologout is for idle authenticated
	// clients; a client that has not logged in after a minute is not coming.
	DefaultPreAuthTimeout = 60 * time.Second
	// DefaultIdleTimeout ends relayed sessions after this long without
	// traffic: more than RFC 3501 section 5.4's 30 minutes, so that RFC
	// 2177's re-IDLE every 29 minutes keeps a session alive (field note 10).
	DefaultIdleTimeout = 31 * time.Minute
)

// Options configures a Server. Zero fields get the defaults above.
type Options struct {
	Authenticator proxy.Authenticator
	Tokens        proxy.TokenSource
	Upstream      proxy.Upstream // Mechanism "XOAUTH2" or "OAUTHBEARER"
	// TLSConfig is the server side TLS config (certificates via
	// GetCertificate); required for implicit and STARTTLS listeners.
	TLSConfig *tls.Config
	// Tracker records relayed sessions; nil means a private one.
	Tracker  *proxy.Tracker
	Logger   *slog.Logger
	Hostname string // in the greeting

	// Throttle delays and refuses password guessing; Limits bounds
	// connections and upstream sessions. Both are shared with SMTP; nil
	// means none.
	Throttle *proxy.Throttle
	Limits   *proxy.Limits

	MaxLine, MaxLiteral int
	MaxFailures         int
	PreAuthTimeout      time.Duration
	IdleTimeout         time.Duration
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
	opts Options
	log  *slog.Logger
	// own tracks this server's relayed sessions (opts.Tracker may be shared
	// with SMTP) so that Shutdown waits for these only.
	own proxy.Tracker
	wg  sync.WaitGroup // connection goroutines

	lns proxy.Listeners
	// warm holds pre-authentication upstream connections; nil when
	// Options.WarmUpstreams is 0.
	warm *warmPool

	mu       sync.Mutex
	preauth  map[net.Conn]struct{}
	relays   map[*byeConn]struct{} // relayed sessions, for BYE at Shutdown
	draining bool                  // Shutdown: no new sessions either
}

// New returns a Server; call Serve for each listener.
func New(opts *Options) *Server {
	s := &Server{opts: *opts, preauth: map[net.Conn]struct{}{},
		relays: map[*byeConn]struct{}{}}
	o := &s.opts
	o.MaxLine = orDefault(o.MaxLine, DefaultMaxLine)
	o.MaxLiteral = orDefault(o.MaxLiteral, DefaultMaxLiteral)
	o.MaxFailures = orDefault(o.MaxFailures, DefaultMaxFailures)
	o.PreAuthTimeout = orDefault(o.PreAuthTimeout, DefaultPreAuthTimeout)
	o.IdleTimeout = orDefault(o.IdleTimeout, DefaultIdleTimeout)
	o.ShutdownQuiet = orDefault(o.ShutdownQuiet, DefaultShutdownQuiet)
	if o.Tracker == nil {
		o.Tracker = &proxy.Tracker{}
	}
	if o.Hostname == "" {
		o.Hostname = "localhost"
	}
	s.log = o.Logger
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("proto", proxy.ProtoIMAP)
	if o.WarmUpstreams > 0 {
		s.warm = &warmPool{size: o.WarmUpstreams, maxAge: orDefault(o.WarmMaxAge, DefaultWarmMaxAge),
			dial: func(ctx context.Context) (*upConn, error) { return dialUpstream(ctx, &s.opts.Upstream) }}
	}
	return s
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// ErrNoTLSConfig is returned by Serve for a TLS listener without Options.TLSConfig.
var ErrNoTLSConfig = errors.New("imap: listener needs a tls config")

// Serve accepts connections on ln until Close or Shutdown, then returns nil.
// For TLSImplicit it wraps ln in TLS itself.
func (s *Server) Serve(ln net.Listener, mode proxy.TLSMode) error {
	if mode != proxy.TLSNone && s.opts.TLSConfig == nil {
		return ErrNoTLSConfig
	}
	if mode == proxy.TLSImplicit {
		ln = tls.NewListener(ln, s.opts.TLSConfig)
	}
	if !s.lns.Add(ln) {
		ln.Close()
		return nil
	}
	defer s.lns.Remove(ln)
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.lns.Closed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond) // e.g. out of file descriptors
				continue
			}
			return fmt.Errorf("imap: accept: %w", err)
		}
		if !s.addConn(nc) {
			nc.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(nc, mode)
		}()
	}
}

// Close stops accepting on every listener. Sessions, logged in or not, go on.
func (s *Server) Close() error {
	s.warm.close()
	return s.lns.Close()
}

// Shutdown stops accepting, drops connections that have not logged in, ends
// relayed sessions with "* BYE" as soon as the upstream is quiet (so that
// clients reconnect at once, RFC 3501 section 7.1.5, and no response is cut
// in half), and closes those still open when ctx ends. It returns ctx's
// error if it had to close sessions.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.Close()
	s.mu.Lock()
	s.draining = true
	for nc := range s.preauth {
		nc.Close()
	}
	s.mu.Unlock()
	s.byeIdle(ctx)
	if !s.own.Wait(ctx) {
		err = errors.Join(err, ctx.Err())
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		// A login still waiting for the upstream ends by itself within
		// upLoginTimeout; handOff refuses to start its session.
	}
	return err
}

func (s *Server) addConn(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.preauth[nc] = struct{}{}
	return true
}

func (s *Server) removeConn(nc net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.preauth, nc)
}

// track registers a relayed session with both trackers, unless Shutdown has
// begun. The returned function removes it again.
func (s *Server) track(nc net.Conn, bc *byeConn, sess *proxy.Session) (remove func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return nil, false
	}
	delete(s.preauth, nc) // from now on the trackers own it
	r1, r2 := s.own.Add(sess), s.opts.Tracker.Add(sess)
	s.relays[bc] = struct{}{}
	return func() { s.removeRelay(bc); r1(); r2() }, true
}
