package proxy

import (
	"container/list"
	"net/netip"
	"sync"
)

// Connection limit defaults. A whole office behind one NAT address shares the
// per-network limit (Apple Mail alone keeps up to 5 connections per account,
// docs/clients.md, "Clients idle long and keep several connections"); Exchange
// Online allows about 20 concurrent IMAP sessions per mailbox (docs/clients.md,
// "Upstreams limit connections per mailbox").
//
// One IPv6 customer usually holds a /48 (a site) and any number of /64s in
// it: the per-/64 limit alone would let one allocation take the whole
// total, so a /48 has a limit of its own, higher than a /64's.
const (
	DefaultConnsPerIP         = 50
	DefaultConnsPerIPv6Site   = 200
	DefaultMaxConns           = 10000
	DefaultSessionsPerMailbox = 20
)

// LimitsOptions configures Limits. Zero fields get the defaults.
type LimitsOptions struct {
	// ConnsPerIP bounds open client connections per network (an IPv4
	// address or an IPv6 /64); Trusted networks are exempt.
	ConnsPerIP int
	// ConnsPerIPv6Site bounds them per IPv6 /48 as well.
	ConnsPerIPv6Site int
	// MaxConns bounds all open client connections.
	MaxConns int
	// SessionsPerMailbox bounds upstream sessions per mailbox and protocol.
	SessionsPerMailbox int
	Trusted            []netip.Prefix
}

// Limits counts open connections and upstream sessions. One Limits is
// shared by all front ends. Its maps hold only live connections, so they
// are bounded by MaxConns. Methods on a nil *Limits allow everything.
//
// When the total is reached, the oldest connection that has not logged in
// is dropped to make room, as Dovecot's login processes do: otherwise
// silent connections, each held until its pre-auth deadline, could shut
// everyone out. Logged-in sessions are never dropped for this.
type Limits struct {
	o LimitsOptions

	mu       sync.Mutex
	total    int
	perNet   map[netip.Prefix]int
	sessions map[string]int
	refusing int        // refusals being written
	preauth  *list.List // of *ConnSlot not logged in, oldest first
}

// ConnSlot is one admitted connection's place in Limits. Methods on a nil
// *ConnSlot do nothing.
type ConnSlot struct {
	l        *Limits
	nets     []netip.Prefix // counted in perNet
	evict    func()         // closes the connection to make room
	elem     *list.Element  // in l.preauth while evictable
	released bool
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
	o.ConnsPerIP = OrDefault(o.ConnsPerIP, DefaultConnsPerIP)
	o.ConnsPerIPv6Site = OrDefault(o.ConnsPerIPv6Site, DefaultConnsPerIPv6Site)
	o.MaxConns = OrDefault(o.MaxConns, DefaultMaxConns)
	o.SessionsPerMailbox = OrDefault(o.SessionsPerMailbox, DefaultSessionsPerMailbox)
	return &Limits{o: o, perNet: map[netip.Prefix]int{}, sessions: map[string]int{}, preauth: list.New()}
}

// Admit admits a new client connection from ip. When the total is reached,
// the oldest connection admitted with an evict function (nil: never
// evicted) that has not logged in is evicted (evict is called, outside the lock) to make room.
// Call the slot's LoggedIn when the client logs in, and Release when the
// connection ends.
func (l *Limits) Admit(ip netip.Addr, evict func()) (*ConnSlot, bool) {
	if l == nil {
		return nil, true
	}
	nets := []netip.Prefix{Network(ip)}
	if ip.Unmap().Is6() {
		p, _ := ip.Unmap().Prefix(48)
		nets = append(nets, p)
	}
	exempt := Trusted(l.o.Trusted, ip)
	l.mu.Lock()
	if !exempt && (l.perNet[nets[0]] >= l.o.ConnsPerIP ||
		len(nets) > 1 && l.perNet[nets[1]] >= l.o.ConnsPerIPv6Site) {
		l.mu.Unlock()
		return nil, false
	}
	var victim *ConnSlot
	if l.total >= l.o.MaxConns {
		if victim = l.oldestPreauth(); victim == nil {
			l.mu.Unlock()
			return nil, false
		}
		l.releaseLocked(victim)
	}
	s := &ConnSlot{l: l, nets: nets, evict: evict}
	l.total++
	for _, n := range nets {
		l.perNet[n]++
	}
	if evict != nil {
		s.elem = l.preauth.PushBack(s)
	}
	l.mu.Unlock()
	if victim != nil {
		victim.evict()
	}
	return s, true
}

// oldestPreauth returns the oldest evictable slot, or nil.
func (l *Limits) oldestPreauth() *ConnSlot {
	if e := l.preauth.Front(); e != nil {
		return e.Value.(*ConnSlot)
	}
	return nil
}

// releaseLocked frees s's counts once; l.mu is held.
func (l *Limits) releaseLocked(s *ConnSlot) {
	if s.released {
		return
	}
	s.released = true
	l.total--
	for _, n := range s.nets {
		if l.perNet[n]--; l.perNet[n] <= 0 {
			delete(l.perNet, n)
		}
	}
	if s.elem != nil {
		l.preauth.Remove(s.elem)
		s.elem = nil
	}
}

// LoggedIn makes the connection a session, which is never evicted.
func (s *ConnSlot) LoggedIn() {
	if s == nil {
		return
	}
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if s.elem != nil {
		s.l.preauth.Remove(s.elem)
		s.elem = nil
	}
}

// Release frees the slot; calling it again, or after an eviction, is
// harmless.
func (s *ConnSlot) Release() {
	if s == nil {
		return
	}
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	s.l.releaseLocked(s)
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
