package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"
)

// tlsListener serves an implicit TLS listener. Each accepted connection's
// handshake runs in a goroutine of its own, within HandshakeTimeout, and
// Accept returns only connections whose handshake is done: a client that
// never starts one costs a goroutine for seconds, not a front end's time,
// and never reaches the wire format.
type tlsListener struct {
	net.Listener // the Front's listener, which admits and tracks
	f            *Front
	conns        chan net.Conn
	done         chan struct{} // closed when the accept loop ends
	err          error         // why it ended
}

func newTLSListener(f *Front, fl net.Listener) *tlsListener {
	l := &tlsListener{Listener: fl, f: f, conns: make(chan net.Conn), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *tlsListener) acceptLoop() {
	for {
		nc, err := l.Listener.Accept()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && !l.f.Closed() {
			time.Sleep(acceptRetry) // e.g. out of file descriptors
			continue
		}
		if err != nil {
			l.err = err
			close(l.done)
			return
		}
		go l.handshake(nc)
	}
}

func (l *tlsListener) handshake(nc net.Conn) {
	tc := tls.Server(nc, l.f.o.TLSConfig)
	ctx, cancel := context.WithTimeout(context.Background(), l.f.o.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		l.f.log.Debug("tls handshake failed", "proto", l.f.o.Proto, "remote", addrString(RemoteAddr(nc)), "err", err)
		nc.Close()
		return
	}
	select {
	case l.conns <- tc:
	case <-l.done:
		nc.Close()
	}
}

// Accept returns the next connection whose handshake is done.
func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}
