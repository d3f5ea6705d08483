package proxy

import (
	"net/netip"
	"sync"
)

// Connection limit defaults. A whole office behind one NAT address shares the
// per-network limit (Apple Mail alone keeps up to 5 connections per account,
// docs/clients.md, "Clients idle long and keep several connections"); Exchange
// Online allows about 20 concurrent IMAP sessions per mailbox (docs/clients.md,
// "Upstreams limit connections per mailbox").
const (
	DefaultConnsPerIP         = 50
	DefaultMaxConns           = 10000
	DefaultSessionsPerMailbox = 20
)

// LimitsOptions configures Limits. Zero fields get the defaults.
type LimitsOptions struct {
	// ConnsPerIP bounds open client connections per network (an IPv4
	// address or an IPv6 /64); Trusted networks are exempt.
	ConnsPerIP int
	// MaxConns bounds all open client connections.
	MaxConns int
	// SessionsPerMailbox bounds upstream sessions per mailbox and protocol.
	SessionsPerMailbox int
	Trusted            []netip.Prefix
}

// Limits counts open connections and upstream sessions. One Limits is
// shared by the IMAP and SMTP front ends. Its maps hold only live
// connections, so they are bounded by MaxConns. Methods on a nil *Limits
// allow everything.
type Limits struct {
	o LimitsOptions

	mu       sync.Mutex
	total    int
	perNet   map[netip.Prefix]int
	sessions map[string]int
	refusing int // refusals being written
}

// maxRefusing bounds refusals written at once (each may need a TLS
// handshake); beyond it a refused connection is just closed, so that a
// flood costs no more than the limits allow.
const maxRefusing = 64

// NewLimits returns Limits; opts may be nil.
func NewLimits(opts *LimitsOptions) *Limits {
	var o LimitsOptions
	if opts != nil {
		o = *opts
	}
	o.ConnsPerIP = orDefault(o.ConnsPerIP, DefaultConnsPerIP)
	o.MaxConns = orDefault(o.MaxConns, DefaultMaxConns)
	o.SessionsPerMailbox = orDefault(o.SessionsPerMailbox, DefaultSessionsPerMailbox)
	return &Limits{o: o, perNet: map[netip.Prefix]int{}, sessions: map[string]int{}}
}

// Conn admits a new client connection from ip. When ok, call release once
// the connection ends.
func (l *Limits) Conn(ip netip.Addr) (release func(), ok bool) {
	if l == nil {
		return func() {}, true
	}
	n, exempt := Network(ip), Trusted(l.o.Trusted, ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.o.MaxConns || (!exempt && l.perNet[n] >= l.o.ConnsPerIP) {
		return nil, false
	}
	l.total++
	l.perNet[n]++
	return l.once(func() {
		l.total--
		if l.perNet[n]--; l.perNet[n] <= 0 {
			delete(l.perNet, n)
		}
	}), true
}

// Session admits an upstream session of proto for mailbox. When ok, call
// release once the session ends.
func (l *Limits) Session(proto, mailbox string) (release func(), ok bool) {
	if l == nil {
		return func() {}, true
	}
	key := proto + "\x00" + mailbox
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sessions[key] >= l.o.SessionsPerMailbox {
		return nil, false
	}
	l.sessions[key]++
	return l.once(func() {
		if l.sessions[key]--; l.sessions[key] <= 0 {
			delete(l.sessions, key)
		}
	}), true
}

// once wraps f (run under l.mu) so that calling it twice is harmless.
func (l *Limits) once(f func()) func() {
	var o sync.Once
	return func() {
		o.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			f()
		})
	}
}

// Refusal reserves the right to answer a refused connection (BYE, 421)
// rather than just close it. When ok, call done once the answer is written.
func (l *Limits) Refusal() (done func(), ok bool) {
	if l == nil {
		return func() {}, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.refusing >= maxRefusing {
		return nil, false
	}
	l.refusing++
	return l.once(func() { l.refusing-- }), true
}

// Conns returns the number of open connections counted.
func (l *Limits) Conns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}
