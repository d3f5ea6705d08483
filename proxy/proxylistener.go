package proxy

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

const (
	// proxyHeaderTimeout bounds the wait for a balancer's header; it sends
	// it at once with the connection.
	proxyHeaderTimeout = 5 * time.Second
	// maxPendingHeaders bounds connections whose header is being read, so
	// that a flood cannot start unbounded goroutines.
	maxPendingHeaders = 256
)

// ProxyProtoListener accepts connections only from trusted load balancers
// and only with a PROXY protocol v1 or v2 header; the connections it yields
// report the real client as RemoteAddr. Any other connection is closed
// before a byte is read or written: a peer that is not trusted could forge
// the header, and a trusted peer without one means a misconfiguration.
type ProxyProtoListener struct {
	net.Listener
	trusted []netip.Prefix
	log     *slog.Logger
	conns   chan net.Conn
	done    chan struct{}
	once    sync.Once
	errMu   sync.Mutex
	err     error // from the underlying Accept
}

var _ net.Listener = (*ProxyProtoListener)(nil)

// NewProxyProtoListener wraps ln; log may be nil.
func NewProxyProtoListener(ln net.Listener, trusted []netip.Prefix, log *slog.Logger) *ProxyProtoListener {
	if log == nil {
		log = slog.Default()
	}
	l := &ProxyProtoListener{Listener: ln, trusted: trusted, log: log,
		conns: make(chan net.Conn), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

// Accept returns the next connection whose header was read.
func (l *ProxyProtoListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.errMu.Lock()
		defer l.errMu.Unlock()
		return nil, l.err
	}
}

// Close closes the underlying listener; Accept then returns its error.
func (l *ProxyProtoListener) Close() error {
	err := l.Listener.Close()
	l.stop(net.ErrClosed)
	return err
}

func (l *ProxyProtoListener) stop(err error) {
	l.once.Do(func() {
		l.errMu.Lock()
		l.err = err
		l.errMu.Unlock()
		close(l.done)
	})
}

// acceptLoop reads headers in goroutines, at most maxPendingHeaders at once.
func (l *ProxyProtoListener) acceptLoop() {
	sem := make(chan struct{}, maxPendingHeaders)
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			l.stop(err)
			return
		}
		peer := RemoteAddr(nc)
		if !Trusted(l.trusted, peer) {
			l.log.Warn("proxy protocol: connection from untrusted peer refused", "remote", peer)
			nc.Close()
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-l.done:
			nc.Close()
			return
		}
		go func() {
			defer func() { <-sem }()
			l.handshake(nc, peer)
		}()
	}
}

// handshake reads the header and hands the connection to Accept.
func (l *ProxyProtoListener) handshake(nc net.Conn, peer netip.Addr) {
	nc.SetReadDeadline(time.Now().Add(proxyHeaderTimeout))
	// Small: the header is short, and after it the buffer is dropped.
	br := bufio.NewReaderSize(nc, 256)
	src, err := readProxyHeader(br)
	if err != nil {
		l.log.Warn("proxy protocol: header refused", "peer", peer, "err", err)
		nc.Close()
		return
	}
	nc.SetReadDeadline(time.Time{})
	c := &proxyConn{Conn: nc, br: br, remote: nc.RemoteAddr()}
	if src.IsValid() {
		c.remote = net.TCPAddrFromAddrPort(src)
	}
	select {
	case l.conns <- c:
	case <-l.done:
		nc.Close()
	}
}

// proxyConn reads through the buffer that held the header (it may hold the
// client's first bytes too) and reports the client's address.
type proxyConn struct {
	net.Conn
	br     *bufio.Reader
	remote net.Addr
}

// Read returns what the header's buffer holds, then reads the connection
// directly. mailgate reads a connection from one goroutine at a time.
func (c *proxyConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
}

// RemoteAddr is the client's address from the header.
func (c *proxyConn) RemoteAddr() net.Addr { return c.remote }
