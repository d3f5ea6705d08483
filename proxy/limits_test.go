package proxy

import (
	"net/netip"
	"testing"
)

func TestLimitsConnPerNetwork(t *testing.T) {
	l := NewLimits(&LimitsOptions{ConnsPerIP: 2, MaxConns: 100,
		Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	a := netip.MustParseAddr("2001:db8::1")
	s1, ok1 := l.Admit(a, nil)
	_, ok2 := l.Admit(netip.MustParseAddr("2001:db8::2"), nil) // same /64
	if !ok1 || !ok2 {
		t.Fatal("first two connections refused")
	}
	if _, ok := l.Admit(a, nil); ok {
		t.Fatal("third connection from the same /64 admitted")
	}
	if _, ok := l.Admit(netip.MustParseAddr("2001:db8:1::1"), nil); !ok {
		t.Fatal("another /64 refused")
	}
	s1.Release()
	s1.Release() // twice is harmless
	if _, ok := l.Admit(a, nil); !ok {
		t.Fatal("connection refused after one was released")
	}
	for range 5 {
		if _, ok := l.Admit(netip.MustParseAddr("10.9.9.9"), nil); !ok {
			t.Fatal("trusted network limited")
		}
	}
}

func TestLimitsTotal(t *testing.T) {
	l := NewLimits(&LimitsOptions{MaxConns: 3})
	var slots []*ConnSlot
	for i := range 3 {
		r, ok := l.Admit(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), nil)
		if !ok {
			t.Fatalf("connection %d refused", i)
		}
		slots = append(slots, r)
	}
	if _, ok := l.Admit(netip.MustParseAddr("192.0.2.99"), nil); ok {
		t.Fatal("connection over the total admitted")
	}
	slots[0].Release()
	if _, ok := l.Admit(netip.MustParseAddr("192.0.2.99"), nil); !ok {
		t.Fatal("refused after a release")
	}
	if n := l.Conns(); n != 3 {
		t.Fatalf("Conns = %d, want 3", n)
	}
}

func TestLimitsSessions(t *testing.T) {
	l := NewLimits(&LimitsOptions{SessionsPerMailbox: 2})
	r, _ := l.Session(ProtoIMAP, "ann")
	l.Session(ProtoIMAP, "ann")
	if _, ok := l.Session(ProtoIMAP, "ann"); ok {
		t.Fatal("third IMAP session admitted")
	}
	if _, ok := l.Session(ProtoSMTP, "ann"); !ok {
		t.Fatal("SMTP counted with IMAP")
	}
	if _, ok := l.Session(ProtoIMAP, "bob"); !ok {
		t.Fatal("another mailbox refused")
	}
	r()
	if _, ok := l.Session(ProtoIMAP, "ann"); !ok {
		t.Fatal("refused after a release")
	}
	var nl *Limits
	if _, ok := nl.Session(ProtoIMAP, "ann"); !ok {
		t.Fatal("nil Limits refused")
	}
}

func TestLimitsRefusalBounded(t *testing.T) {
	l := NewLimits(nil)
	var done []func()
	for range maxRefusing {
		d, ok := l.Refusal()
		if !ok {
			t.Fatal("refusal slot denied below the bound")
		}
		done = append(done, d)
	}
	if _, ok := l.Refusal(); ok {
		t.Fatal("refusal slot granted beyond the bound")
	}
	done[0]()
	if _, ok := l.Refusal(); !ok {
		t.Fatal("refusal slot not freed")
	}
}

// TestLimitsIPv6Site: many /64s of one /48 share the /48's limit.
func TestLimitsIPv6Site(t *testing.T) {
	l := NewLimits(&LimitsOptions{ConnsPerIP: 2, ConnsPerIPv6Site: 3})
	for i := range 3 {
		if _, ok := l.Admit(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, byte(i), 15: 1}), nil); !ok {
			t.Fatalf("/64 number %d refused below the /48's limit", i)
		}
	}
	if _, ok := l.Admit(netip.MustParseAddr("2001:db8:0:9::1"), nil); ok {
		t.Fatal("a fourth /64 of the same /48 admitted")
	}
	if _, ok := l.Admit(netip.MustParseAddr("2001:db8:1::1"), nil); !ok {
		t.Fatal("another /48 refused")
	}
}

// TestLimitsEvictsOldest: at the total the oldest evictable slot that has
// not logged in goes; a logged-in one and a non-evictable one never do.
func TestLimitsEvictsOldest(t *testing.T) {
	l := NewLimits(&LimitsOptions{MaxConns: 3})
	var evicted []int
	ip := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) }
	session, _ := l.Admit(ip(0), func() { evicted = append(evicted, 0) })
	session.LoggedIn()
	l.Admit(ip(1), nil) // never evicted
	old, _ := l.Admit(ip(2), func() { evicted = append(evicted, 2) })
	if _, ok := l.Admit(ip(3), func() { evicted = append(evicted, 3) }); !ok || len(evicted) != 1 || evicted[0] != 2 {
		t.Fatalf("at the total: evicted %v, want [2]", evicted)
	}
	old.Release() // the evicted connection closes later: harmless
	if n := l.Conns(); n != 3 {
		t.Fatalf("Conns = %d, want 3", n)
	}
	if _, ok := l.Admit(ip(4), nil); !ok || len(evicted) != 2 || evicted[1] != 3 {
		t.Fatalf("evicted %v, want [2 3]", evicted)
	}
	if _, ok := l.Admit(ip(5), nil); ok {
		t.Fatal("admitted with nothing left to evict")
	}
}
