package proxy

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// ErrThrottled refuses a login without checking the password because its
// client network or its mailbox failed too often lately. It wraps
// ErrUnavailable: clients get NO [UNAVAILABLE] / 454 4.7.0 and retry later.
var ErrThrottled = fmt.Errorf("too many failed logins: %w", ErrUnavailable)

// Throttle defaults, after Dovecot's auth_failure_delay (2 s, doubling up
// to 15 s) and its auth penalty.
const (
	DefaultFailureDelay       = 2 * time.Second
	DefaultMaxFailureDelay    = 15 * time.Second
	DefaultMaxFailures        = 10
	DefaultMaxMailboxFailures = 30
	DefaultFailureWindow      = 10 * time.Minute
	DefaultLockout            = 15 * time.Minute
	DefaultSuccessMemory      = 7 * 24 * time.Hour
	DefaultMaxEntries         = 100000
)

// maxKeyLen bounds a user name used as a key; longer names are cut.
const maxKeyLen = 320

// ThrottleOptions configures a Throttle. Zero fields get the defaults.
type ThrottleOptions struct {
	// Trusted networks are never delayed, counted or locked out.
	Trusted []netip.Prefix
	// FailureDelay delays the reply to the first failed login from a
	// network; each further failure doubles it up to MaxFailureDelay.
	FailureDelay, MaxFailureDelay time.Duration
	// MaxFailures failures from one network (an IPv4 address or an IPv6
	// /64) within FailureWindow lock that network out for Lockout.
	MaxFailures int
	// MaxMailboxFailures failures against one mailbox, from any network,
	// within FailureWindow lock the mailbox for Lockout, except from
	// networks that logged in to it successfully within SuccessMemory.
	MaxMailboxFailures int
	FailureWindow      time.Duration
	Lockout            time.Duration
	SuccessMemory      time.Duration
	// MaxEntries bounds each of the two tables (failures, successes).
	MaxEntries int
	// Now is the clock; nil means time.Now. Tests inject a fake one.
	Now func() time.Time
}

// Throttle slows down and then refuses password guessing, per client
// network and per mailbox. One Throttle is shared by IMAP and SMTP, so a
// guesser cannot double its rate by switching protocol. Methods on a nil
// *Throttle do nothing.
//
// How a legitimate user stays unaffected by another network's guessing:
// the delay and the network lockout count only the failures of the
// client's own network; the mailbox lockout, which counts every network,
// does not apply to a network that recently logged in to that mailbox.
// A user on a new network while their mailbox is under attack is refused
// until the lockout ends: that is the price of stopping distributed
// guessing.
type Throttle struct {
	o ThrottleOptions

	mu       sync.Mutex
	failures *lru[failures]  // "n:"+network and "m:"+mailbox
	good     *lru[time.Time] // mailbox+"\x00"+network -> last success
}

// failures counts failed logins in a fixed window.
type failures struct {
	start  time.Time // of the window
	n      int
	locked time.Time // refused until then
}

// NewThrottle returns a Throttle; opts may be nil.
func NewThrottle(opts *ThrottleOptions) *Throttle {
	var o ThrottleOptions
	if opts != nil {
		o = *opts
	}
	o.FailureDelay = OrDefault(o.FailureDelay, DefaultFailureDelay)
	o.MaxFailureDelay = OrDefault(o.MaxFailureDelay, DefaultMaxFailureDelay)
	o.MaxFailures = OrDefault(o.MaxFailures, DefaultMaxFailures)
	o.MaxMailboxFailures = OrDefault(o.MaxMailboxFailures, DefaultMaxMailboxFailures)
	o.FailureWindow = OrDefault(o.FailureWindow, DefaultFailureWindow)
	o.Lockout = OrDefault(o.Lockout, DefaultLockout)
	o.SuccessMemory = OrDefault(o.SuccessMemory, DefaultSuccessMemory)
	o.MaxEntries = OrDefault(o.MaxEntries, DefaultMaxEntries)
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Throttle{o: o, failures: newLRU[failures](o.MaxEntries), good: newLRU[time.Time](o.MaxEntries)}
}

// OrDefault returns v, or def when v is zero or negative: how every
// Options type here turns its zero fields into defaults.
func OrDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Network returns the unit that throttling and connection limits count:
// the address itself for IPv4, its /64 for IPv6 (one customer's share).
func Network(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// Trusted reports whether ip is in one of prefixes.
func Trusted(prefixes []netip.Prefix, ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// mailboxKey is the throttle's key for a mailbox. The Gate hands over the
// canonical mailbox (store.CanonicalMailbox), so that every spelling of one
// mailbox shares one key; the cut only bounds memory for other callers.
func mailboxKey(user string) string {
	if len(user) > maxKeyLen {
		user = user[:maxKeyLen]
	}
	return user
}

// Check reports ErrThrottled if a login by user from ip must be refused
// without looking at the password.
func (t *Throttle) Check(ip netip.Addr, user string) error {
	if t == nil || Trusted(t.o.Trusted, ip) {
		return nil
	}
	now, net, mb := t.o.Now(), Network(ip).String(), mailboxKey(user)
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.failures.get("n:" + net); f != nil && now.Before(f.locked) {
		return ErrThrottled
	}
	if f := t.failures.get("m:" + mb); f != nil && now.Before(f.locked) && !t.recentSuccess(mb, net, now) {
		return ErrThrottled
	}
	return nil
}

func (t *Throttle) recentSuccess(mb, net string, now time.Time) bool {
	last := t.good.get(mb + "\x00" + net)
	return last != nil && now.Sub(*last) < t.o.SuccessMemory
}

// Failure records a failed login and returns how long to delay its reply.
func (t *Throttle) Failure(ip netip.Addr, user string) time.Duration {
	if t == nil || Trusted(t.o.Trusted, ip) {
		return 0
	}
	now, net, mb := t.o.Now(), Network(ip).String(), mailboxKey(user)
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.count("n:"+net, now, t.o.MaxFailures)
	if m := t.count("m:"+mb, now, t.o.MaxMailboxFailures); m > n && !t.recentSuccess(mb, net, now) {
		n = m // distributed guessing: each new network starts slow too
	}
	return t.delay(n)
}

// count adds a failure to key's window and locks key at limit. It returns
// the failures counted, or limit while key is locked.
func (t *Throttle) count(key string, now time.Time, limit int) int {
	f := t.failures.put(key)
	if now.Before(f.locked) {
		return limit
	}
	if now.Sub(f.start) >= t.o.FailureWindow {
		f.start, f.n = now, 0
	}
	f.n++
	n := f.n
	if f.n >= limit {
		f.locked = now.Add(t.o.Lockout)
		f.start, f.n = now, 0 // a fresh count once the lockout ends
	}
	return n
}

// delay is FailureDelay doubled for every earlier failure, capped.
func (t *Throttle) delay(n int) time.Duration {
	d := t.o.FailureDelay
	for i := 1; i < n && d < t.o.MaxFailureDelay; i++ {
		d *= 2
	}
	return min(d, t.o.MaxFailureDelay)
}

// Success records a login that passed, so that user can keep logging in
// from ip's network while the mailbox is locked for others.
func (t *Throttle) Success(ip netip.Addr, user string) {
	if t == nil || Trusted(t.o.Trusted, ip) {
		return
	}
	now := t.o.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	*t.good.put(mailboxKey(user) + "\x00" + Network(ip).String()) = now
}

// Sleep waits d or until ctx ends: the delay of a failed login's reply.
func Sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

// Len returns the number of entries in the failure and success tables.
func (t *Throttle) Len() (failures, successes int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failures.len(), t.good.len()
}
