package proxy

import (
	"errors"
	"fmt"
	"mailgate/internal/testclock"
	"net/netip"
	"testing"
	"time"
)

func newTestThrottle(o ThrottleOptions) (*Throttle, *testclock.Clock) {
	clk := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	o.Now = clk.Now
	return NewThrottle(&o), clk
}

var (
	attacker = netip.MustParseAddr("192.0.2.66")
	user     = netip.MustParseAddr("198.51.100.7")
)

func TestThrottleDelayDoubles(t *testing.T) {
	th, _ := newTestThrottle(ThrottleOptions{MaxFailures: 100, MaxMailboxFailures: 100})
	want := []time.Duration{2, 4, 8, 15, 15}
	for i, w := range want {
		if d := th.Failure(attacker, "ann@example.com"); d != w*time.Second {
			t.Errorf("failure %d: delay %v, want %v", i+1, d, w*time.Second)
		}
	}
}

// op is one step of a throttle table test.
type op struct {
	do   string // "fail", "ok", "advance"
	ip   netip.Addr
	user string
	d    time.Duration
}

func TestThrottleTable(t *testing.T) {
	fail := func(ip netip.Addr, u string) op { return op{do: "fail", ip: ip, user: u} }
	tests := []struct {
		name    string
		ops     []op
		ip      netip.Addr
		user    string
		refused bool
	}{
		{"fresh", nil, attacker, "ann", false},
		{"below limit", rep(2, fail(attacker, "ann")), attacker, "ann", false},
		{"network locked", rep(3, fail(attacker, "ann")), attacker, "bob", true},
		{"ipv6 /64 shares a lock", rep(3, fail(netip.MustParseAddr("2001:db8::1"), "ann")),
			netip.MustParseAddr("2001:db8::ffff:1"), "x", true},
		{"other /64 not locked", rep(3, fail(netip.MustParseAddr("2001:db8::1"), "ann")),
			netip.MustParseAddr("2001:db8:0:1::1"), "x", false},
		{"lockout ends", append(rep(3, fail(attacker, "ann")), op{do: "advance", d: time.Hour}), attacker, "ann", false},
		{"window forgets", []op{fail(attacker, "ann"), fail(attacker, "ann"), {do: "advance", d: 11 * time.Minute},
			fail(attacker, "ann")}, attacker, "ann", false},
		{"mailbox locked for new network", spread(5, "ann"), user, "ann", true},
		{"mailbox lock spares known network", append([]op{{do: "ok", ip: user, user: "ann"}}, spread(5, "ann")...),
			user, "ann", false},
		{"mailbox lock is per mailbox", spread(5, "ann"), user, "bob", false},
		{"trusted never locked", rep(10, fail(netip.MustParseAddr("10.1.2.3"), "ann")),
			netip.MustParseAddr("10.1.2.3"), "ann", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th, clk := newTestThrottle(ThrottleOptions{MaxFailures: 3, MaxMailboxFailures: 5,
				Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
			for _, o := range tt.ops {
				switch o.do {
				case "fail":
					th.Failure(o.ip, o.user)
				case "ok":
					th.Success(o.ip, o.user)
				case "advance":
					clk.Add(o.d)
				}
			}
			err := th.Check(tt.ip, tt.user)
			if got := err != nil; got != tt.refused {
				t.Fatalf("Check = %v, want refused %v", err, tt.refused)
			}
			if err != nil && (!errors.Is(err, ErrThrottled) || !errors.Is(err, ErrUnavailable)) {
				t.Fatalf("Check = %v, want ErrThrottled wrapping ErrUnavailable", err)
			}
		})
	}
}

func rep[T any](n int, v T) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// spread is one failure each from n different networks.
func spread(n int, mailbox string) (ops []op) {
	for i := range n {
		ops = append(ops, op{do: "fail", ip: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), user: mailbox})
	}
	return ops
}

func TestThrottleOtherNetworkNotSlowed(t *testing.T) {
	th, _ := newTestThrottle(ThrottleOptions{MaxFailures: 100, MaxMailboxFailures: 5})
	th.Success(user, "ann")
	for range 20 {
		th.Failure(attacker, "ann")
	}
	if d := th.Failure(user, "ann"); d != DefaultFailureDelay {
		t.Errorf("known network's first typo delayed %v, want %v", d, DefaultFailureDelay)
	}
	if d := th.Failure(netip.MustParseAddr("203.0.113.9"), "ann"); d != DefaultMaxFailureDelay {
		t.Errorf("new network's failure during an attack delayed %v, want %v", d, DefaultMaxFailureDelay)
	}
}

func TestThrottleBounded(t *testing.T) {
	const max = 1000
	th, _ := newTestThrottle(ThrottleOptions{MaxEntries: max})
	for i := range 50 * max {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		u := fmt.Sprintf("user%d@example.com", i)
		th.Failure(ip, u)
		th.Success(ip, u)
	}
	f, s := th.Len()
	if f != max || s != max {
		t.Fatalf("tables hold %d and %d entries after %d keys, want %d each", f, s, 50*max, max)
	}
}

func TestThrottleNil(t *testing.T) {
	var th *Throttle
	if th.Check(attacker, "ann") != nil || th.Failure(attacker, "ann") != 0 {
		t.Fatal("nil Throttle refused or delayed")
	}
	th.Success(attacker, "ann")
}
