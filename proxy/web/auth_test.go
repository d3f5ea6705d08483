package web

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"mailgate/proxy"
)

// startSignIn starts a sign-in in b and returns its request.
func (b *browser) startSignIn() authReq {
	b.e.t.Helper()
	p := b.post("/auth/signin", nil)
	if p.code != 200 {
		b.e.t.Fatalf("sign-in start: %d", p.code)
	}
	return b.e.idp.lastReq()
}

func TestSignInStartPage(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	p := b.post("/auth/signin", nil)
	req := e.idp.lastReq()
	mustContain(t, p, `<meta http-equiv="refresh" content="0; url=https://idp.example/authorize?fresh=false&amp;state=`+req.state+`">`,
		`href="https://idp.example/authorize?fresh=false&amp;state=`+req.state+`"`)
	if req.fresh || req.nonce == "" || len(req.verifier) < 43 || req.state == req.nonce {
		t.Fatalf("auth request: %+v", req)
	}
	var cookie string
	for _, c := range p.header.Values("Set-Cookie") {
		if strings.HasPrefix(c, stateCookie+"=") {
			cookie = c
		}
	}
	for _, attr := range []string{"Path=/", "Max-Age=600", "Secure", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(cookie, attr) {
			t.Errorf("state cookie %q lacks %s", cookie, attr)
		}
	}
}

// TestSignInDirect: a sign-in form from a page whose policy names the
// provider is redirected; one from a page sent before the provider was
// known, or for another provider, gets the page that moves on by itself.
func TestSignInDirect(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	p := b.post("/auth/signin", url.Values{"direct": {"1"}})
	if p.code != 303 || !strings.HasPrefix(p.header.Get("Location"), "https://idp.example/authorize?") {
		t.Fatalf("direct sign-in: %d to %q", p.code, p.header.Get("Location"))
	}
	e.srv.idp.learn("https://old-idp.example/x")
	p = b.post("/auth/signin", url.Values{"direct": {"1"}})
	if p.code != 200 || !strings.Contains(p.body, `http-equiv="refresh"`) {
		t.Fatalf("provider moved: %d", p.code)
	}
	if o := e.srv.idp.get(); o != "https://idp.example" {
		t.Fatalf("origin not learned again: %q", o)
	}

	down := newEnv(t, nil)
	down.idp.failURL = errors.New("down")
	page := down.browser().get("/")
	if strings.Contains(page.body, `name="direct"`) || strings.Contains(page.header.Get("Content-Security-Policy"), "idp.example") {
		t.Fatal("direct without a known provider")
	}
}

func TestStateReplayRefused(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	req := b.startSignIn()
	code := e.idp.approve(req.state, e.user("ann@example.com"), nil)
	b.callback(req.state, code, 303)
	b.post("/auth/signout", nil)

	// The same state again, even with a fresh code: refused, no session.
	p := b.get("/auth/callback?" + url.Values{"state": {req.state}, "code": {e.idp.approve(req.state, e.user("ann@example.com"), nil)}}.Encode())
	if p.code != 400 {
		t.Fatalf("replayed state: %d", p.code)
	}
	mustContain(t, p, "Sign-in failed", ">Sign in</button>")
	if strings.Contains(b.get("/").body, "Sign out") {
		t.Fatal("signed in by a replayed state")
	}
	if !strings.Contains(e.logs.String(), "unknown, used or expired state") {
		t.Errorf("no log line:\n%s", e.logs)
	}
	if strings.Contains(e.logs.String(), code) {
		t.Error("the code reached the log")
	}
}

func TestStateExpired(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	req := b.startSignIn()
	e.clock.Add(10*time.Minute + time.Second)
	b.callback(req.state, e.idp.approve(req.state, e.user("ann@example.com"), nil), 400)
	if strings.Contains(b.get("/").body, "Sign out") {
		t.Fatal("signed in by an expired state")
	}
}

// TestStateOtherBrowser: a callback URL taken to another browser (login
// CSRF: an attacker's own code pushed on a victim) signs nobody in.
func TestStateOtherBrowser(t *testing.T) {
	e := newEnv(t, nil)
	attacker := e.browser()
	req := attacker.startSignIn()
	victim := e.browser()
	victim.callback(req.state, e.idp.approve(req.state, e.user("mallory@example.com"), nil), 400)
	if strings.Contains(victim.get("/").body, "mallory") {
		t.Fatal("the victim was signed in as the attacker")
	}
}

func TestCallbackFailures(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	cases := []struct {
		name   string
		query  func(req authReq) url.Values
		status int
		text   string
	}{
		{"provider error", func(req authReq) url.Values {
			return url.Values{"state": {req.state}, "error": {"access_denied"}, "error_description": {"user said no"}}
		}, 400, "Sign-in failed"},
		{"no code", func(req authReq) url.Values { return url.Values{"state": {req.state}} }, 400, "Sign-in failed"},
		{"no state", func(req authReq) url.Values { return url.Values{"code": {"x"}} }, 400, "Sign-in failed"},
		{"bad code", func(req authReq) url.Values { return url.Values{"state": {req.state}, "code": {"forged"}} }, 400, "Sign-in failed"},
		{"wrong audience", func(req authReq) url.Values {
			return url.Values{"state": {req.state}, "code": {e.idp.approve(req.state, User{}, errors.New("sign-in failed: audience"))}}
		}, 400, "Sign-in failed"},
		{"domain refused", func(req authReq) url.Values {
			err := fmt.Errorf("other.example: %w", ErrMailboxRefused)
			return url.Values{"state": {req.state}, "code": {e.idp.approve(req.state, User{}, err)}}
		}, 403, "does not serve your mailbox"},
		{"no mailbox", func(req authReq) url.Values {
			return url.Values{"state": {req.state}, "code": {e.idp.approve(req.state, User{}, nil)}}
		}, 400, "Sign-in failed"},
	}
	for _, c := range cases {
		req := b.startSignIn()
		p := b.get("/auth/callback?" + c.query(req).Encode())
		if p.code != c.status {
			t.Errorf("%s: status %d, want %d", c.name, p.code, c.status)
		}
		mustContain(t, p, c.text)
		if strings.Contains(b.get("/").body, "Sign out") {
			t.Fatalf("%s: signed in", c.name)
		}
	}
	if n := strings.Count(e.logs.String(), "web: sign-in failed"); n != len(cases) {
		t.Errorf("%d log lines for %d failures:\n%s", n, len(cases), e.logs)
	}
}

func TestAuthURLFailure(t *testing.T) {
	e := newEnv(t, nil)
	e.idp.failURL = errors.New("discovery: connection refused")
	p := e.browser().post("/auth/signin", nil)
	if p.code != 503 {
		t.Fatalf("status %d", p.code)
	}
	mustContain(t, p, "cannot be reached")
	if len(e.srv.mem.pending) != 0 {
		t.Fatal("a failed start left its state behind")
	}
}

// TestSignInThrottled: failed sign-ins count against the shared throttle
// like failed logins; a locked network cannot start another.
func TestSignInThrottled(t *testing.T) {
	th := proxy.NewThrottle(&proxy.ThrottleOptions{FailureDelay: time.Millisecond, MaxFailureDelay: time.Millisecond, MaxFailures: 3})
	e := newEnv(t, func(o *Options) { o.Throttle = th })
	b := e.browser()
	for range 3 {
		b.callback("forged-state", "x", 400)
	}
	p := b.post("/auth/signin", nil)
	if p.code != 429 {
		t.Fatalf("locked network: %d", p.code)
	}
	mustContain(t, p, "too many failed sign-ins")
	b.callback("forged-state", "x", 429)
	if f, _ := th.Len(); f == 0 {
		t.Fatal("nothing counted")
	}
}

// TestPendingBounded: a flood of sign-in starts from one network does not
// grow the portal's memory without end.
func TestPendingBounded(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	for range maxPendingPerNetwork {
		b.startSignIn()
	}
	if p := b.post("/auth/signin", nil); p.code != 429 {
		t.Fatalf("past the bound: %d", p.code)
	}
	e.clock.Add(pendingTTL + time.Minute)
	b.startSignIn()
	if n := len(e.srv.mem.pending); n != 1 {
		t.Fatalf("%d pending after expiry", n)
	}
}

// TestPendingBoundedPerIPv6Site: one IPv6 site (a /48) holds 65,536 /64s,
// each with its own per-network bound, so the /48 has a bound of its own:
// without it one free tunnel-broker /48 fills maxPending and no one else
// can sign in for pendingTTL. Another site still can.
func TestPendingBoundedPerIPv6Site(t *testing.T) {
	e := newEnv(t, nil)
	start := func(remote string) int {
		req := httptest.NewRequest("POST", "https://mail.example.com/auth/signin", nil)
		req.RemoteAddr = remote
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, req)
		return w.Code
	}
	refused := 0
	for i := range maxPending/maxPendingPerNetwork + 1 {
		for range maxPendingPerNetwork {
			if start(fmt.Sprintf("[2001:db8:0:%x::1]:4000", i)) != 200 {
				refused++
			}
		}
	}
	if n := len(e.srv.mem.pending); n > maxPendingPerIPv6Site || refused == 0 {
		t.Fatalf("one /48 holds %d pending sign-ins (%d refused), want at most %d",
			n, refused, maxPendingPerIPv6Site)
	}
	if code := start("[2001:db8:1::1]:4000"); code != 200 {
		t.Fatalf("another /48: status %d", code)
	}
	if code := start("192.0.2.1:4000"); code != 200 {
		t.Fatalf("IPv4: status %d", code)
	}
}

// TestSignInReplacesSession: signing in gives a new session id, and the
// old one stops working (no session fixation).
func TestSignInReplacesSession(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.signIn(e.user("ann@example.com"))
	u, _ := url.Parse(e.ts.URL)
	old := b.c.Jar.Cookies(u)[0].Value
	b.signIn(e.user("ann@example.com"))
	if now := b.c.Jar.Cookies(u)[0].Value; now == old || e.srv.mem.session(old) != nil {
		t.Fatal("the old session id still works")
	}
}
