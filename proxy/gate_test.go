package proxy

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// passAuth accepts password "good" for any mailbox and counts its calls;
// it records the user names it was asked about.
type passAuth struct {
	calls atomic.Int32
	mu    sync.Mutex
	users []string
	// hook runs after the password check, before the answer (a revoke
	// racing the login).
	hook func()
}

func (a *passAuth) Authenticate(_ context.Context, req *LoginRequest) (*Identity, error) {
	a.calls.Add(1)
	a.mu.Lock()
	a.users = append(a.users, req.Username)
	a.mu.Unlock()
	if req.Password != "good" {
		return nil, ErrAuthFailed
	}
	if a.hook != nil {
		a.hook()
	}
	return &Identity{Mailbox: req.Username, PasswordID: "pw-" + req.Username}, nil
}

func newTestGate(t *testing.T, a Authenticator, th *Throttle, lim *Limits) (*Gate, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	g := NewGate(&GateOptions{Authenticator: a, Throttle: th, Limits: lim,
		Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	return g, &buf
}

func login(g *Gate, user, pass string) (*Session, error) {
	return g.Login(context.Background(), &LoginRequest{Username: user, Password: pass,
		Proto: ProtoIMAP, Remote: netip.MustParseAddr("198.51.100.7")})
}

// TestGateCanonicalMailbox: every spelling of one mailbox reaches the store,
// the throttle and the registry as one canonical name, and malformed names
// fail without a store lookup.
func TestGateCanonicalMailbox(t *testing.T) {
	tests := []struct {
		user   string
		want   string // canonical; "" means refused unchecked
		lookup bool
	}{
		{"Ann@Example.COM", "ann@example.com", true},
		{" ann@example.com", "ann@example.com", true},
		{"ann@example.com\t", "ann@example.com", true},
		{"\u00a0ann@example.com\u3000", "ann@example.com", true},
		{"ann@exa mple.com", "", false},
		{"ann@example.com\x00", "", false},
		{"an\x00n@example.com", "", false},
		{"ann\r@example.com", "", false},
		{"ann@example.com\x7f", "", false},
		{"\xff@example.com", "", false},
		{"ann", "", false},
		{strings.Repeat("a", 310) + "@example.com", "", false},
		{"\u212aelvin@example.com", "\u212aelvin@example.com", true}, // no Unicode folding
	}
	for _, tt := range tests {
		a := &passAuth{}
		g, _ := newTestGate(t, a, nil, nil)
		s, err := login(g, tt.user, "good")
		if tt.want == "" {
			if !errors.Is(err, ErrAuthFailed) || a.calls.Load() != 0 {
				t.Errorf("%q: err %v, %d lookups; want ErrAuthFailed and none", tt.user, err, a.calls.Load())
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.user, err)
			continue
		}
		if s.Mailbox != tt.want || a.users[0] != tt.want {
			t.Errorf("%q: session %q, store asked for %q; want %q", tt.user, s.Mailbox, a.users[0], tt.want)
		}
		s.End()
	}
}

// TestGateLockoutAcrossSpellings: padded and Unicode-white-space variants
// of a locked mailbox's name are refused unchecked, like the name itself.
func TestGateLockoutAcrossSpellings(t *testing.T) {
	th, _ := newTestThrottle(ThrottleOptions{MaxFailures: 100, MaxMailboxFailures: 3,
		FailureDelay: time.Microsecond, MaxFailureDelay: time.Microsecond})
	a := &passAuth{}
	g, _ := newTestGate(t, a, th, nil)
	for i := range 3 {
		ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)})
		g.Login(context.Background(), &LoginRequest{Username: "ann@example.com", Password: "bad", Proto: ProtoIMAP, Remote: ip})
	}
	before := a.calls.Load()
	for _, user := range []string{"ann@example.com", " ann@example.com", "ann@example.com\t",
		"ANN@example.com", "\u00a0ann@example.com", "ann@example.com\u3000"} {
		_, err := g.Login(context.Background(), &LoginRequest{Username: user, Password: "good",
			Proto: ProtoSMTP, Remote: netip.MustParseAddr("192.0.2.99")})
		if !errors.Is(err, ErrThrottled) {
			t.Errorf("%q while the mailbox is locked: %v, want ErrThrottled", user, err)
		}
	}
	if n := a.calls.Load(); n != before {
		t.Fatalf("%d password checks while locked, want none", n-before)
	}
}

func TestGateSessionLimit(t *testing.T) {
	g, buf := newTestGate(t, &passAuth{}, nil, NewLimits(&LimitsOptions{SessionsPerMailbox: 1}))
	s, err := login(g, "ann@example.com", "good")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := login(g, "Ann@example.com", "good"); !errors.Is(err, ErrSessionLimit) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("second session: %v, want ErrSessionLimit", err)
	}
	if !strings.Contains(buf.String(), `msg="login refused: too many upstream sessions" proto=imap remote=198.51.100.7 user=ann@example.com`) {
		t.Errorf("log:\n%s", buf)
	}
	s.End()
	s.End() // harmless
	s2, err := login(g, "ann@example.com", "good")
	if err != nil {
		t.Fatalf("after End: %v", err)
	}
	s2.End()
	if n := g.Sessions().Len(); n != 0 {
		t.Fatalf("%d sessions registered after End", n)
	}
}

// TestGateRevokeRacingLogin: a revoke that commits after the password check
// but before the session registers fails that login; a revoke of another
// password does not.
func TestGateRevokeRacingLogin(t *testing.T) {
	for _, tt := range []struct {
		name   string
		revoke func(r *Registry)
		fails  bool
	}{
		{"password", func(r *Registry) { r.ClosePassword("pw-ann@example.com") }, true},
		{"mailbox", func(r *Registry) { r.CloseMailbox("ann@example.com") }, true},
		{"other password", func(r *Registry) { r.ClosePassword("pw-bob@example.com") }, false},
		{"other mailbox", func(r *Registry) { r.CloseMailbox("bob@example.com") }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := &passAuth{}
			g, buf := newTestGate(t, a, nil, nil)
			a.hook = func() { tt.revoke(g.Sessions()) }
			s, err := login(g, "ann@example.com", "good")
			if !tt.fails {
				if err != nil {
					t.Fatal(err)
				}
				s.End()
				return
			}
			if !errors.Is(err, ErrAuthFailed) || !errors.Is(err, ErrRevoked) {
				t.Fatalf("login racing the revoke: %v, want ErrAuthFailed and ErrRevoked", err)
			}
			if g.Sessions().Len() != 0 || !strings.Contains(buf.String(), "password revoked during login") {
				t.Fatalf("registered %d; log:\n%s", g.Sessions().Len(), buf)
			}
		})
	}
}

func TestGateLogLine(t *testing.T) {
	g, buf := newTestGate(t, &passAuth{}, nil, nil)
	login(g, "x\" remote=192.0.2.1 user=y", "bad")
	login(g, strings.Repeat("z", 500), "bad")
	out := buf.String()
	if strings.Count(out, `msg="login failed" proto=imap remote=198.51.100.7 user=`) != 2 {
		t.Fatalf("log lines:\n%s", out)
	}
	if strings.Contains(out, strings.Repeat("z", maxLogLen+1)) {
		t.Fatalf("user name not cut to %d bytes:\n%s", maxLogLen, out)
	}
}

func TestLogSafe(t *testing.T) {
	for in, want := range map[string]string{
		"ann@example.com":       "ann@example.com",
		"a\nb":                  `"a\nb"`,
		"\x1b[31m":              `"\x1b[31m"`,
		strings.Repeat("x", 70): strings.Repeat("x", 64),
	} {
		if got := LogSafe(in); got != want {
			t.Errorf("LogSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSessionExpiry: a session whose password expires is ended then, with
// ErrExpired, and Err fails a login still in flight.
func TestSessionExpiry(t *testing.T) {
	var r Registry
	s := &Session{Mailbox: "ann@example.com", PasswordID: "p1", Expires: time.Now().Add(50 * time.Millisecond)}
	if !r.Register(s, r.Seq()) {
		t.Fatal("Register refused")
	}
	select {
	case <-s.Context().Done():
	case <-time.After(20 * time.Second):
		t.Fatal("session not ended at its password's expiry")
	}
	if err := s.Err(); !errors.Is(err, ErrAuthFailed) || !errors.Is(err, ErrExpired) {
		t.Fatalf("Err = %v, want ErrAuthFailed and ErrExpired", err)
	}
	s.End()
	if r.Len() != 0 {
		t.Fatal("still registered after End")
	}
}
