package imap

import (
	"context"
	"sync"
	"time"

	"mailgate/proxy"
)

// DefaultWarmMaxAge is how long a warm upstream connection waits to be
// used. Upstreams drop connections that do not authenticate (Dovecot after
// 3 minutes); well below that, a warm connection is never found dead.
const DefaultWarmMaxAge = 20 * time.Second

// warmPool keeps a few upstream connections connected, TLS done and
// greeting read, so that a login pays only the upstream's AUTHENTICATE
// and STATUS round trips. It is filled on demand: only after a client has
// passed the app-password check does the pool dial, so clients that never
// authenticate cost the upstream nothing, and a quiet proxy holds no
// connections once MaxAge has passed.
type warmPool struct {
	size   int
	maxAge time.Duration
	dial   func(context.Context) (*upConn, error)

	mu      sync.Mutex
	conns   []*warmConn
	dialing int
	closed  bool
}

type warmConn struct {
	up    *upConn
	timer *time.Timer // closes the connection at maxAge
}

// take returns a warm connection, or nil, and starts refilling the pool.
func (p *warmPool) take() *upConn {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.fillLocked() // after the pop, so the taken one is replaced
	for len(p.conns) > 0 {
		w := p.conns[len(p.conns)-1]
		p.conns = p.conns[:len(p.conns)-1]
		if w.timer.Stop() {
			return w.up
		}
		w.up.nc.Close() // expiring right now
	}
	return nil
}

// fillLocked dials until size connections are warm or on their way.
func (p *warmPool) fillLocked() {
	for ; !p.closed && len(p.conns)+p.dialing < p.size; p.dialing++ {
		go p.add()
	}
}

func (p *warmPool) add() {
	ctx, cancel := context.WithTimeout(context.Background(), proxy.DialTimeout)
	defer cancel()
	up, err := p.dial(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dialing--
	if err != nil {
		return // the next login dials itself and logs what is wrong
	}
	if p.closed {
		up.nc.Close()
		return
	}
	up.nc.SetDeadline(time.Time{}) // take sets the login's deadline
	w := &warmConn{up: up}
	w.timer = time.AfterFunc(p.maxAge, func() { p.expire(w) })
	p.conns = append(p.conns, w)
}

// expire closes w if it is still waiting in the pool.
func (p *warmPool) expire(w *warmConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.conns {
		if c == w {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			w.up.nc.Close()
			return
		}
	}
}

// close closes every waiting connection and stops refilling.
func (p *warmPool) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, w := range p.conns {
		w.timer.Stop()
		w.up.nc.Close()
	}
	p.conns = nil
}

// len reports how many connections wait in the pool (for tests).
func (p *warmPool) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}
