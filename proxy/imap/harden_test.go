package imap

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// Brute-force throttling, connection limits and the PROXY protocol, seen
// from IMAP clients. Client addresses other than 127.0.0.1 come in through
// a PROXY protocol listener that trusts loopback, as behind a balancer.

// recAuth records the client address of each login.
type recAuth struct {
	inner   proxy.Authenticator
	mu      sync.Mutex
	remotes []netip.Addr
}

func (a *recAuth) Authenticate(ctx context.Context, req *proxy.LoginRequest) (*proxy.Identity, error) {
	a.mu.Lock()
	a.remotes = append(a.remotes, req.Remote)
	a.mu.Unlock()
	return a.inner.Authenticate(ctx, req)
}

func (a *recAuth) seen() []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]netip.Addr(nil), a.remotes...)
}

// hardEnv is an env on a plaintext listener (loopback, treated as secure)
// plus a PROXY protocol listener in front of the same server.
type hardEnv struct {
	*env
	rec       *recAuth
	proxyAddr string
}

func newHardEnv(t *testing.T, th *proxy.Throttle, lim *proxy.Limits, more ...func(*testOptions)) *hardEnv {
	h := &hardEnv{}
	h.env = newEnv(t, proxy.TLSNone, func(o *testOptions) {
		h.rec = &recAuth{inner: o.Authenticator}
		o.Authenticator, o.Throttle, o.Limits = h.rec, th, lim
		for _, f := range more {
			f(o)
		}
	})
	ln := proxytest.Listen(t)
	h.proxyAddr = ln.Addr().String()
	pl := proxy.NewProxyProtoListener(ln, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, proxytest.Logger(t))
	go h.srv.Serve(pl, proxy.TLSNone)
	return h
}

// rawClient is a line-level IMAP client.
type rawClient struct {
	t     *testing.T
	nc    net.Conn
	br    *bufio.Reader
	greet string
	n     int
}

// connect dials addr, sends header first if set, and reads the greeting.
func connect(t *testing.T, addr, header string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second)) // hang guard only
	if header != "" {
		nc.Write([]byte(header))
	}
	c := &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
	c.greet, _ = c.br.ReadString('\n')
	return c
}

// from connects through the PROXY listener as client ip.
func (h *hardEnv) from(ip string) *rawClient {
	h.t.Helper()
	c := connect(h.t, h.proxyAddr, fmt.Sprintf("PROXY TCP4 %s 127.0.0.1 40000 143\r\n", ip))
	if !strings.HasPrefix(c.greet, "* OK") {
		h.t.Fatalf("greeting %q", c.greet)
	}
	return c
}

// cmd sends a tagged command and returns its tagged reply, without tag.
func (c *rawClient) cmd(format string, args ...any) string {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("a%d", c.n)
	fmt.Fprintf(c.nc, tag+" "+format+"\r\n", args...)
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("%s: read: %v", tag, err)
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			return strings.TrimSuffix(rest, "\r\n")
		}
	}
}

const (
	replyFailed      = "NO [AUTHENTICATIONFAILED] Authentication failed"
	replyUnavailable = "NO [UNAVAILABLE] Service temporarily unavailable, try again later"
)

func TestThrottleLockout(t *testing.T) {
	h := newHardEnv(t, proxytest.QuickThrottle(proxy.ThrottleOptions{MaxFailures: 2}), nil)
	c := h.from("203.0.113.9")
	for range 2 {
		if r := c.cmd("LOGIN ann@example.com wrong"); r != replyFailed {
			t.Fatalf("LOGIN = %q", r)
		}
	}
	// Locked: refused without checking, even the right password.
	c = h.from("203.0.113.9")
	for _, pw := range []string{"wrong", "good"} {
		if r := c.cmd("LOGIN ann@example.com %s", pw); r != replyUnavailable {
			t.Fatalf("locked LOGIN = %q, want %q", r, replyUnavailable)
		}
	}
	if n := h.auth.calls.Load(); n != 2 {
		t.Fatalf("Authenticator called %d times, want 2 (none while locked)", n)
	}
	// Another network is not locked.
	if r := h.from("198.51.100.1").cmd("LOGIN ann@example.com good"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("other network: %q", r)
	}
}

// TestThrottleDelayHoldsOnlyTheFailure: a failed login's reply waits (an
// hour here), while a good login from another network is answered at once.
// Nothing is timed: a wrongly delayed login would hit the hang guard.
func TestThrottleDelayHoldsOnlyTheFailure(t *testing.T) {
	th := proxy.NewThrottle(&proxy.ThrottleOptions{FailureDelay: time.Hour, MaxFailureDelay: time.Hour})
	// The held reply ends with the pre-auth deadline, so cleanup is quick.
	h := newHardEnv(t, th, nil, func(o *testOptions) { o.PreAuthTimeout = 2 * time.Second })
	bad := h.from("203.0.113.9")
	fmt.Fprintf(bad.nc, "a1 LOGIN ann@example.com wrong\r\n")
	for h.auth.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if r := h.from("198.51.100.1").cmd("LOGIN ann@example.com good"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("good login from another network: %q", r)
	}
	bad.nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if line, err := bad.br.ReadString('\n'); err == nil {
		t.Fatalf("failed login answered before its delay: %q", line)
	}
}

func TestThrottleTrustedExempt(t *testing.T) {
	th := proxy.NewThrottle(&proxy.ThrottleOptions{FailureDelay: time.Hour, MaxFailures: 1,
		Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	h := newHardEnv(t, th, nil)
	c := h.from("10.1.2.3")
	for range 3 { // no delay (the hang guard would fire), no lockout
		if r := c.cmd("LOGIN ann@example.com wrong"); r != replyFailed {
			t.Fatalf("LOGIN = %q", r)
		}
	}
	if r := h.from("10.1.2.3").cmd("LOGIN ann@example.com good"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("trusted good login: %q", r)
	}
}

func TestThrottleMailboxLockSparesKnownNetwork(t *testing.T) {
	h := newHardEnv(t, proxytest.QuickThrottle(proxy.ThrottleOptions{MaxFailures: 100, MaxMailboxFailures: 3}), nil)
	if r := h.from("198.51.100.1").cmd("LOGIN ann@example.com good"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("first login: %q", r)
	}
	for i := range 3 {
		h.from(fmt.Sprintf("203.0.113.%d", i)).cmd("LOGIN ann@example.com wrong")
	}
	if r := h.from("203.0.113.50").cmd("LOGIN ann@example.com good"); r != replyUnavailable {
		t.Fatalf("new network during mailbox lockout: %q", r)
	}
	if r := h.from("198.51.100.1").cmd("LOGIN ann@example.com good"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("known network during mailbox lockout: %q", r)
	}
}

func TestProxyProtocolRemote(t *testing.T) {
	h := newHardEnv(t, nil, nil)
	h.from("203.0.113.7").cmd("LOGIN ann@example.com good")
	v2 := "\r\n\r\n\x00\r\nQUIT\n\x21\x21\x00\x24" + // PROXY, TCP6, 36 bytes
		string(netip.MustParseAddr("2001:db8::7").AsSlice()) + string(netip.MustParseAddr("::1").AsSlice()) +
		"\x9c\x40\x00\x8f"
	c := connect(t, h.proxyAddr, v2)
	c.cmd("LOGIN ann@example.com good")
	want := []netip.Addr{netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("2001:db8::7")}
	if got := h.rec.seen(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("LoginRequest.Remote = %v, want %v", got, want)
	}
	// Without a header the balancer's connection is closed unanswered.
	if c := connect(t, h.proxyAddr, "a1 LOGIN ann@example.com good\r\n"); c.greet != "" {
		t.Fatalf("connection without header greeted: %q", c.greet)
	}
}

func TestConnsPerIP(t *testing.T) {
	h := newHardEnv(t, nil, proxy.NewLimits(&proxy.LimitsOptions{ConnsPerIP: 2}))
	first := h.from("203.0.113.9")
	h.from("203.0.113.9")
	if c := connect(t, h.proxyAddr, "PROXY TCP4 203.0.113.9 127.0.0.1 1 2\r\n"); c.greet != "* BYE Too many connections, try again later\r\n" {
		t.Fatalf("third connection: %q", c.greet)
	}
	h.from("198.51.100.1") // another address still gets in
	first.nc.Close()
	waitGreeting(t, h.proxyAddr, "PROXY TCP4 203.0.113.9 127.0.0.1 1 2\r\n")
}

// TestConnsTotal: at the total, the oldest connection that has not logged
// in is dropped for a newcomer; when every connection is a session, the
// newcomer is refused.
func TestConnsTotal(t *testing.T) {
	h := newHardEnv(t, nil, proxy.NewLimits(&proxy.LimitsOptions{MaxConns: 2}))
	session := connect(t, h.addr, "")
	if r := session.cmd("LOGIN ann@example.com good"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("login: %q", r)
	}
	silent := connect(t, h.addr, "")
	c := connect(t, h.addr, "")
	if !strings.HasPrefix(c.greet, "* OK") {
		t.Fatalf("newcomer at the total: %q", c.greet)
	}
	if _, err := silent.br.ReadString('\n'); err == nil {
		t.Fatal("silent connection not dropped to make room")
	}
	if r := session.cmd("NOOP"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("session after the eviction: %q", r)
	}
	if r := c.cmd("LOGIN bob@example.com good"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("newcomer's login: %q", r)
	}
	if c := connect(t, h.addr, ""); !strings.HasPrefix(c.greet, "* BYE Too many connections") {
		t.Fatalf("third connection with two sessions: %q", c.greet)
	}
}

// waitGreeting connects until a released slot lets it in (the server
// notices the close asynchronously).
func waitGreeting(t *testing.T, addr, header string) {
	t.Helper()
	for range 2000 {
		c := connect(t, addr, header)
		if strings.HasPrefix(c.greet, "* OK") {
			return
		}
		c.nc.Close()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("connection slot never released")
}

func TestSessionsPerMailbox(t *testing.T) {
	h := newHardEnv(t, nil, proxy.NewLimits(&proxy.LimitsOptions{SessionsPerMailbox: 1}))
	first := connect(t, h.addr, "")
	if r := first.cmd("LOGIN ann@example.com good"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("first session: %q", r)
	}
	if r := connect(t, h.addr, "").cmd("LOGIN ann@example.com good"); r != replyUnavailable {
		t.Fatalf("second session of the mailbox: %q", r)
	}
	if r := connect(t, h.addr, "").cmd("LOGIN bob@example.com good"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("other mailbox: %q", r)
	}
	first.cmd("LOGOUT")
	first.nc.Close()
	for range 2000 { // the slot is freed when the relay ends
		c := connect(t, h.addr, "")
		if r := c.cmd("LOGIN ann@example.com good"); strings.HasPrefix(r, "OK") {
			return
		}
		c.nc.Close()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("session slot never released")
}
