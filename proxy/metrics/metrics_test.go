package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"mailgate/proxy"
	"mailgate/proxy/smtp"
)

// TestSeriesExistAtZero: every label value of the contract is there
// before anything happened, so rate() and alerts work from the start.
func TestSeriesExistAtZero(t *testing.T) {
	m := New(&Options{Version: "v1.2.3"})
	for _, p := range Protos {
		for _, r := range proxy.LoginResults {
			if v := value(t, m, "mailgate_logins_total", "proto", p, "result", r); v != 0 {
				t.Errorf("logins %s %s = %v", p, r, v)
			}
		}
		for _, k := range proxy.UpstreamErrorKinds {
			value(t, m, "mailgate_upstream_errors_total", "proto", p, "kind", k)
		}
		value(t, m, "mailgate_sessions", "proto", p)
		value(t, m, "mailgate_preauth_connections", "proto", p)
		value(t, m, "mailgate_upstream_login_duration_seconds", "proto", p)
	}
	for _, p := range Protos {
		for _, d := range []string{ClientToUpstream, UpstreamToClient} {
			value(t, m, "mailgate_relayed_bytes_total", "proto", p, "direction", d)
		}
	}
	for _, r := range TokenResults {
		value(t, m, "mailgate_token_refreshes_total", "result", r)
	}
	for _, r := range smtp.MessageResults {
		value(t, m, "mailgate_smtp_messages_total", "result", r)
	}
	if v := value(t, m, "mailgate_build_info", "version", "v1.2.3"); v != 1 {
		t.Errorf("build_info = %v", v)
	}
	for _, name := range []string{"go_goroutines", "mailgate_token_refresh_duration_seconds", "mailgate_smtp_message_bytes"} {
		value(t, m, name)
	}
	if _, err := find(m, "mailgate_mailboxes"); err == nil {
		t.Error("mailgate_mailboxes without Options.Mailboxes")
	}
}

// TestGateLogins drives the real login step and reads each result back.
func TestGateLogins(t *testing.T) {
	m := New(&Options{})
	th := proxy.NewThrottle(&proxy.ThrottleOptions{MaxFailures: 2, FailureDelay: time.Nanosecond,
		MaxFailureDelay: time.Nanosecond})
	lim := proxy.NewLimits(&proxy.LimitsOptions{SessionsPerMailbox: 1})
	g := proxy.NewGate(&proxy.GateOptions{Authenticator: auth{}, Throttle: th, Limits: lim, Meter: m})

	s, err := login(g, proxy.ProtoIMAP, "alice@example.com", "good", "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := login(g, proxy.ProtoIMAP, "alice@example.com", "good", "192.0.2.1"); !errors.Is(err, proxy.ErrSessionLimit) {
		t.Fatalf("second session: %v", err)
	}
	if v := value(t, m, "mailgate_sessions", "proto", "imap"); v != 1 {
		t.Fatalf("sessions = %v, want 1", v)
	}
	s.End()
	s.End() // twice: counted once
	login(g, proxy.ProtoPOP3, "down@example.com", "good", "192.0.2.2")
	for range 2 {
		login(g, proxy.ProtoSMTP, "bob@example.com", "bad", "192.0.2.3")
	}
	if _, err := login(g, proxy.ProtoSMTP, "bob@example.com", "good", "192.0.2.3"); !errors.Is(err, proxy.ErrThrottled) {
		t.Fatalf("locked out login: %v", err)
	}
	for _, tt := range []struct {
		proto, result string
		want          float64
	}{
		{"imap", proxy.LoginOK, 1}, {"imap", proxy.LoginLimit, 1}, {"pop3", proxy.LoginUnavailable, 1},
		{"smtp", proxy.LoginFailed, 2}, {"smtp", proxy.LoginThrottled, 1}, {"smtp", proxy.LoginOK, 0},
	} {
		if v := value(t, m, "mailgate_logins_total", "proto", tt.proto, "result", tt.result); v != tt.want {
			t.Errorf("logins{%s,%s} = %v, want %v", tt.proto, tt.result, v, tt.want)
		}
	}
	if v := value(t, m, "mailgate_sessions", "proto", "imap"); v != 0 {
		t.Errorf("sessions after End = %v, want 0", v)
	}
}

// TestPreAuthConnections: a connection counts from accept until it logs
// in or closes, once, whichever comes first.
func TestPreAuthConnections(t *testing.T) {
	m := New(&Options{})
	f := proxy.NewFront(&proxy.FrontOptions{Proto: proxy.ProtoPOP3, Meter: m})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, done, _ := f.Listener(ln, proxy.TLSNone)
	defer done()
	defer f.Close()
	accept := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		sc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	gauge := func() float64 { return value(t, m, "mailgate_preauth_connections", "proto", "pop3") }
	a, b := accept(), accept()
	if v := gauge(); v != 2 {
		t.Fatalf("two accepted: %v", v)
	}
	proxy.ConnOf(a).LoggedIn()
	if v := gauge(); v != 1 {
		t.Fatalf("one logged in: %v", v)
	}
	a.Close() // a session ending is no longer pre-auth
	b.Close()
	b.Close()
	if v := gauge(); v != 0 {
		t.Fatalf("all closed: %v", v)
	}
}

func TestUpstreamLoginAndRelay(t *testing.T) {
	m := New(&Options{})
	m.UpstreamLogin("imap", 20*time.Millisecond, nil)
	m.UpstreamLogin("imap", time.Second, fmt.Errorf("probe: %w", proxy.ErrAuthFailed))
	m.UpstreamLogin("web", time.Second, nil) // not a mail protocol: ignored
	m.Relay("pop3").UpstreamToClient.Add(1500)
	m.Relay("smtp").ClientToUpstream.Add(10240)
	if m.Relay("web") != (proxy.RelayCounters{}) {
		t.Error("the portal has relay counters")
	}
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mailgate_upstream_login_duration_seconds", []string{"proto", "imap"}, 2},
		{"mailgate_upstream_errors_total", []string{"proto", "imap", "kind", proxy.UpstreamRefused}, 1},
		{"mailgate_relayed_bytes_total", []string{"proto", "pop3", "direction", UpstreamToClient}, 1500},
		{"mailgate_relayed_bytes_total", []string{"proto", "smtp", "direction", ClientToUpstream}, 10240},
	} {
		if v := value(t, m, tt.name, tt.labels...); v != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, v, tt.want)
		}
	}
}

func TestTokensAndMessages(t *testing.T) {
	m := New(&Options{})
	m.OnToken("ok", time.Second)
	m.OnToken("relink", time.Second)
	m.OnToken("surprise", time.Second) // not in the contract: dropped
	m.Message(smtp.MessageSent, 4096)
	m.Message(smtp.MessageRejected, 100)
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mailgate_token_refreshes_total", []string{"result", "ok"}, 1},
		{"mailgate_token_refreshes_total", []string{"result", "relink"}, 1},
		{"mailgate_token_refresh_duration_seconds", nil, 2},
		{"mailgate_smtp_messages_total", []string{"result", "sent"}, 1},
		{"mailgate_smtp_messages_total", []string{"result", "rejected"}, 1},
		{"mailgate_smtp_message_bytes", nil, 2},
	} {
		if v := value(t, m, tt.name, tt.labels...); v != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, v, tt.want)
		}
	}
}

// TestMailboxesCached: the store is counted at most once per
// MailboxesFor, and a failed count keeps the last one.
func TestMailboxesCached(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	calls, fail := 0, false
	m := New(&Options{Now: func() time.Time { return now }, Mailboxes: func() (MailboxCounts, error) {
		calls++
		if fail {
			return MailboxCounts{}, errors.New("store closed")
		}
		return MailboxCounts{Linked: calls, NeedsRelink: 2, Unlinked: 3, AppPasswords: 7}, nil
	}})
	check := func(linked float64, wantCalls int) {
		t.Helper()
		if v := value(t, m, "mailgate_mailboxes", "state", StateLinked); v != linked || calls != wantCalls {
			t.Fatalf("linked = %v after %d counts, want %v after %d", v, calls, linked, wantCalls)
		}
	}
	check(1, 1)
	check(1, 1)
	if v := value(t, m, "mailgate_mailboxes", "state", StateNeedsRelink); v != 2 {
		t.Fatalf("needs_relink = %v", v)
	}
	if v := value(t, m, "mailgate_app_passwords"); v != 7 {
		t.Fatalf("app_passwords = %v", v)
	}
	now = now.Add(DefaultMailboxesFor)
	check(2, 2)
	now, fail = now.Add(DefaultMailboxesFor), true
	check(2, 3)
}

// tokens is a TokenSource for Gate.UpstreamLogin's test.
type tokens struct{ err error }

func (ts tokens) Token(context.Context, string) (string, error) { return "t", ts.err }
func (tokens) Invalidate(string, string)                        {}

// TestGateUpstreamLogin: an upstream login is told with its kind, but not
// a login that got no token (the provider's failure, in the token
// metrics) nor one cut by a revoke.
func TestGateUpstreamLogin(t *testing.T) {
	m := New(&Options{})
	reg := &proxy.Registry{}
	g := proxy.NewGate(&proxy.GateOptions{Authenticator: auth{}, Sessions: reg, Meter: m})
	sess, err := login(g, proxy.ProtoIMAP, "alice@example.com", "good", "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	defer sess.End()
	upLogin := func(ts tokens, upErr error) {
		start := time.Now()
		_, err := proxy.LoginWithToken(context.Background(), ts, sess.Mailbox, func(string) (int, error) { return 0, upErr })
		g.UpstreamLogin(sess, start, err)
	}
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	upLogin(tokens{}, nil)
	upLogin(tokens{}, fmt.Errorf("%w: dial upstream: %w", proxy.ErrUnavailable, dial))
	upLogin(tokens{err: fmt.Errorf("%w: provider down", proxy.ErrUnavailable)}, nil)
	reg.CloseMailbox(sess.Mailbox)
	upLogin(tokens{}, fmt.Errorf("%w: %w", proxy.ErrUnavailable, proxy.ErrRevoked))
	if v := value(t, m, "mailgate_upstream_login_duration_seconds", "proto", "imap"); v != 2 {
		t.Errorf("upstream logins told: %v, want 2", v)
	}
	if v := value(t, m, "mailgate_upstream_errors_total", "proto", "imap", "kind", proxy.UpstreamDial); v != 1 {
		t.Errorf("dial errors: %v, want 1", v)
	}
	if v := value(t, m, "mailgate_upstream_errors_total", "proto", "imap", "kind", proxy.UpstreamProtocol); v != 0 {
		t.Errorf("protocol errors: %v, want 0 (no token, revoked)", v)
	}
}
