package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"
)

// DefaultPreAuthTimeout bounds the whole time from connect to a successful
// login. RFC 3501 section 5.4's 30-minute autologout is for idle
// authenticated IMAP clients and RFC 5321 section 4.5.3.2's timeouts are
// per command; a client that has not logged in after a minute is not
// coming, and must not hold a connection by trickling bytes or NOOPs.
const DefaultPreAuthTimeout = 60 * time.Second

// DefaultHandshakeTimeout bounds a TLS handshake, on an implicit TLS
// listener and after STARTTLS: a real client finishes in milliseconds, and
// one that never starts must not hold its connection for the whole
// pre-auth deadline.
const DefaultHandshakeTimeout = 10 * time.Second

// refuseTimeout bounds writing a refusal, TLS handshake included.
const refuseTimeout = 5 * time.Second

// acceptRetry is the pause after a temporary accept error (out of file
// descriptors, say), so that the loop does not spin.
const acceptRetry = 50 * time.Millisecond

// ErrNoTLSConfig is returned for a TLS listener without FrontOptions.TLSConfig.
var ErrNoTLSConfig = errors.New("listener needs a tls config")

// FrontOptions configures a Front.
type FrontOptions struct {
	Proto string // for logs: ProtoIMAP, ProtoSMTP
	// Limits bounds connections per network and in total; nil means none.
	Limits *Limits
	// PreAuthTimeout closes connections that have not logged in by then;
	// default DefaultPreAuthTimeout.
	PreAuthTimeout time.Duration
	// TLSConfig is the server side TLS config for implicit TLS listeners.
	TLSConfig *tls.Config
	// HandshakeTimeout bounds each TLS handshake; default
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// RefuseLine is written (over TLS on an implicit listener) to a
	// connection over the limits instead of the greeting: IMAP's "* BYE"
	// (RFC 3501 section 7.1.5), SMTP's 421 (RFC 5321 section 3.1).
	RefuseLine string
	// DrainEvery is how often Shutdown asks sessions again whether they
	// can end (see Conn.OnDrain); default 250 ms.
	DrainEvery time.Duration
	// RelayCounters count the bytes of relayed sessions as they move
	// (metrics); zero counts nothing.
	RelayCounters RelayCounters
	// Meter is told of connections that have not logged in, and gives the
	// RelayCounters when those are zero (metrics); nil: none.
	Meter  Meter
	Logger *slog.Logger
}

// Front is the lifecycle every front end shares: its listeners, the
// accounting and limits of its connections, the pre-auth deadline, a
// recover per connection, and graceful shutdown. A front end serves its
// wire format on the connections a Front hands out.
type Front struct {
	o   FrontOptions
	log *slog.Logger
	lns Listeners
	wg  sync.WaitGroup // Serve's connection goroutines

	mu       sync.Mutex
	conns    map[*Conn]struct{}
	draining bool
	changed  chan struct{} // closed and replaced when a connection ends
}

// NewFront returns a Front.
func NewFront(opts *FrontOptions) *Front {
	f := &Front{o: *opts, conns: map[*Conn]struct{}{}}
	f.o.PreAuthTimeout = OrDefault(f.o.PreAuthTimeout, DefaultPreAuthTimeout)
	f.o.HandshakeTimeout = OrDefault(f.o.HandshakeTimeout, DefaultHandshakeTimeout)
	f.o.DrainEvery = OrDefault(f.o.DrainEvery, 250*time.Millisecond)
	f.o.Meter = orNop(f.o.Meter)
	if f.o.RelayCounters == (RelayCounters{}) {
		f.o.RelayCounters = f.o.Meter.Relay(f.o.Proto)
	}
	f.log = f.o.Logger
	if f.log == nil {
		f.log = slog.Default()
	}
	return f
}

// RelayCounters returns the byte counters of the front end's relayed
// sessions (FrontOptions.RelayCounters, or the Meter's).
func (f *Front) RelayCounters() RelayCounters { return f.o.RelayCounters }

// Logger returns the Front's logger with the "proto" key, for the front
// end's own log lines.
func (f *Front) Logger() *slog.Logger { return f.log.With("proto", f.o.Proto) }

// DrainEvery is the FrontOptions.DrainEvery for relayed sessions that
// Shutdown ends after quiet without upstream traffic: a quarter of it, so
// that a session ends soon after it fell quiet, between 10 ms and 250 ms.
func DrainEvery(quiet time.Duration) time.Duration {
	return min(max(quiet/4, 10*time.Millisecond), 250*time.Millisecond)
}

// Listener wraps ln so that its Accept admits connections through the
// limits, tracks them and arms their pre-auth deadline. For TLSImplicit,
// Accept returns *tls.Conn whose handshake is done, within HandshakeTimeout
// (see tlsListener). ok is false after Close: the caller returns. Call done
// when the caller stops accepting.
func (f *Front) Listener(ln net.Listener, mode TLSMode) (l net.Listener, done func(), ok bool) {
	if _, err := ParseTLSMode(string(mode)); err != nil {
		return nil, nil, false
	}
	fl := &frontListener{Listener: ln, f: f, mode: mode}
	if !f.lns.Add(fl) {
		ln.Close()
		return nil, nil, false
	}
	l = fl
	if mode == TLSImplicit {
		l = newTLSListener(f, fl)
	}
	return l, func() { f.lns.Remove(fl) }, true
}

// CheckMode returns an error if a listener of mode cannot be served.
func (f *Front) CheckMode(mode TLSMode) error {
	if _, err := ParseTLSMode(string(mode)); err != nil {
		return err
	}
	if mode != TLSNone && f.o.TLSConfig == nil {
		return fmt.Errorf("%s: tls mode %s: %w", f.o.Proto, mode, ErrNoTLSConfig)
	}
	return nil
}

// Serve accepts connections on ln until Close or Shutdown, then returns
// nil. It runs handle for each in a goroutine of its own; a panic there is
// logged with its stack and closes that connection only.
func (f *Front) Serve(ln net.Listener, mode TLSMode, handle func(nc net.Conn)) error {
	if err := f.CheckMode(mode); err != nil {
		return err
	}
	l, done, ok := f.Listener(ln, mode)
	if !ok {
		return nil
	}
	defer done()
	for {
		nc, err := l.Accept()
		if err != nil {
			if f.Closed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(acceptRetry)
				continue
			}
			return fmt.Errorf("%s: accept: %w", f.o.Proto, err)
		}
		f.wg.Add(1)
		go f.handle(nc, handle)
	}
}

func (f *Front) handle(nc net.Conn, handle func(nc net.Conn)) {
	defer f.wg.Done()
	defer func() {
		if v := recover(); v != nil {
			f.log.Error("panic serving connection; closed it", "proto", f.o.Proto,
				"remote", addrString(ConnOf(nc).Remote()), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			ConnOf(nc).Close()
		}
	}()
	handle(nc)
}

// Close stops accepting on every listener. Connections, logged in or not,
// go on.
func (f *Front) Close() error { return f.lns.Close() }

// Closed reports whether Close was called, so that an accept error after it
// is a normal end.
func (f *Front) Closed() bool { return f.lns.Closed() }

// Draining reports whether Shutdown has begun: a front end starts no new
// session then.
func (f *Front) Draining() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.draining
}

// Conns returns the number of open connections.
func (f *Front) Conns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// Shutdown stops accepting, closes connections that have not logged in,
// and asks every other one to end (Conn.OnDrain) every DrainEvery until
// all are gone. When ctx ends first, it forces what is left closed and
// returns ctx's error.
func (f *Front) Shutdown(ctx context.Context) error {
	err := f.Close()
	f.mu.Lock()
	f.draining = true
	f.mu.Unlock()
	t := time.NewTicker(f.o.DrainEvery)
	defer t.Stop()
	for {
		conns, changed := f.snapshot()
		if len(conns) == 0 {
			f.waitHandlers(ctx)
			return err
		}
		for _, c := range conns {
			c.drainStep(false)
		}
		select {
		case <-ctx.Done():
			for _, c := range conns {
				c.drainStep(true)
			}
			return errors.Join(err, ctx.Err())
		case <-changed:
		case <-t.C:
		}
	}
}

// waitHandlers waits for Serve's goroutines, which may still be logging
// after their connection closed.
func (f *Front) waitHandlers(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (f *Front) snapshot() ([]*Conn, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*Conn, 0, len(f.conns))
	for c := range f.conns {
		out = append(out, c)
	}
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	return out, f.changed
}

func (f *Front) add(c *Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.draining {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Front) remove(c *Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
}

// frontListener admits, tracks and arms each accepted connection.
type frontListener struct {
	net.Listener
	f    *Front
	mode TLSMode
}

func (l *frontListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c := l.f.admit(nc, l.mode); c != nil {
			return c, nil
		}
	}
}

// admit applies the limits to nc and tracks it; nil means nc was refused.
func (f *Front) admit(nc net.Conn, mode TLSMode) *Conn {
	remote := RemoteAddr(nc)
	c := &Conn{Conn: newBatchConn(nc), f: f, remote: remote, deadline: time.Now().Add(f.o.PreAuthTimeout)}
	// Counted before Admit, whose evict may close c at once.
	c.preAuth.Store(true)
	f.o.Meter.PreAuth(f.o.Proto, 1)
	slot, ok := f.o.Limits.Admit(remote, c.evict)
	if !ok {
		c.leavePreAuth()
		f.log.Warn("connection refused: too many connections", "proto", f.o.Proto, "remote", addrString(remote))
		f.refuse(nc, mode)
		return nil
	}
	c.slot = slot
	c.timer = time.AfterFunc(f.o.PreAuthTimeout, c.preAuthExpired)
	if !f.add(c) {
		c.Close() // accepted while Shutdown closed the listener
		return nil
	}
	return c
}

// refuse answers a connection over the limits with RefuseLine, within
// refuseTimeout. At most maxRefusing refusals are written at once; beyond
// that a flood's connections are just closed.
func (f *Front) refuse(nc net.Conn, mode TLSMode) {
	done, ok := f.o.Limits.Refusal()
	if !ok || f.o.RefuseLine == "" {
		nc.Close()
		return
	}
	go func() {
		defer done()
		nc.SetDeadline(time.Now().Add(refuseTimeout))
		w := nc
		if mode == TLSImplicit {
			w = tls.Server(nc, f.o.TLSConfig)
		}
		w.Write([]byte(f.o.RefuseLine))
		nc.Close()
	}()
}
