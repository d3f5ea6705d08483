package admin_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"mailgate/proxy/admin"
	"mailgate/proxy/oauth"
	"mailgate/store"
)

// checkingSessions records what it is asked to close and, at that moment,
// runs check, which looks at the store.
type checkingSessions struct {
	check     func()
	passwords []string
	mailboxes []string
}

func (s *checkingSessions) ClosePassword(id string) int {
	s.check()
	s.passwords = append(s.passwords, id)
	return 1
}

func (s *checkingSessions) CloseMailbox(mailbox string) int {
	s.check()
	s.mailboxes = append(s.mailboxes, mailbox)
	return 2
}

// TestSessionsClosedAfterCommit: revoke, revoke-all and unlink end the
// live sessions only once the store change has committed, so a login
// racing them either fails its password check or registers in time to be
// closed; and they name the mailbox as the store does.
func TestSessionsClosedAfterCommit(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	_, _, err := st.CreatePassword("ann@example.com", "phone", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	p2, _, err := st.CreatePassword("ann@example.com", "laptop", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveRefreshToken("microsoft", "ann@example.com", "rt"); err != nil {
		t.Fatal(err)
	}
	var wantPasswords int
	sess := &checkingSessions{check: func() {
		ps, err := st.ListPasswords("ann@example.com")
		if err != nil || len(ps) != wantPasswords {
			t.Errorf("sessions closed while the store has %d passwords (%v), want %d", len(ps), err, wantPasswords)
		}
	}}
	svc := admin.New(&admin.Options{Store: st, Sessions: sess})

	wantPasswords = 1
	r, err := svc.RevokePassword(ctx, admin.RevokeArgs{Mailbox: "ann@example.com", ID: p2.ID})
	if err != nil || r.Sessions != 1 || !slices.Equal(sess.passwords, []string{p2.ID}) {
		t.Fatalf("revoke: %+v %v; closed %v", r, err, sess.passwords)
	}

	sess.check = func() {
		if as, _ := st.Accounts(); len(as) != 1 || !as[0].Linked.IsZero() {
			t.Errorf("sessions closed while the mailbox is linked: %+v", as)
		}
	}
	u, err := svc.Unlink(ctx, admin.UnlinkArgs{Mailbox: " Ann@Example.com"})
	if err != nil || u.Sessions != 2 || u.Passwords != 1 {
		t.Fatalf("unlink: %+v %v", u, err)
	}

	wantPasswords = 0
	sess.check = func() {
		if ps, _ := st.ListPasswords("ann@example.com"); len(ps) != 0 {
			t.Errorf("sessions closed while the store has %d passwords", len(ps))
		}
	}
	ra, err := svc.RevokeAll(ctx, admin.RevokeAllArgs{Mailboxes: []string{"ANN@example.com", "bob@example.com"}})
	if err != nil || len(ra.Revoked) != 1 || ra.Sessions != 4 {
		t.Fatalf("revoke-all: %+v %v", ra, err)
	}
	want := []string{"ann@example.com", "ann@example.com", "bob@example.com"}
	if !slices.Equal(sess.mailboxes, want) {
		t.Errorf("mailboxes closed %q, want %q", sess.mailboxes, want)
	}
}

// TestNoSessions: without a daemon (nil Sessions) nothing is closed.
func TestNoSessions(t *testing.T) {
	st := openStore(t)
	p, _, err := st.CreatePassword("ann@example.com", "phone", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	svc := admin.New(&admin.Options{Store: st})
	r, err := svc.RevokePassword(context.Background(), admin.RevokeArgs{Mailbox: "ann@example.com", ID: p.ID})
	if err != nil || r.Sessions != 0 {
		t.Fatalf("revoke: %+v %v", r, err)
	}
}

// TestDomainsFollowReload: the allowed domains are asked for at each
// operation, so a reloaded accounts.domains applies at once.
func TestDomainsFollowReload(t *testing.T) {
	domains := []string{"example.com"}
	svc := admin.New(&admin.Options{Store: openStore(t), Domains: func() []string { return domains }})
	create := func(mailbox string) error {
		_, err := svc.CreatePassword(context.Background(), admin.CreateArgs{Mailbox: mailbox, Name: "phone"})
		return err
	}
	err := create("bob@other.org")
	var ae *admin.Error
	if !errors.As(err, &ae) || ae.Code != admin.CodeFailed || !strings.Contains(ae.Hint, "accounts.domains") {
		t.Fatalf("other domain: %v", err)
	}
	domains = append(domains, "other.org")
	if err := create("bob@other.org"); err != nil {
		t.Fatalf("after reload: %v", err)
	}
}

// TestLinkRefused: link says why it cannot run, with a hint.
func TestLinkRefused(t *testing.T) {
	st := openStore(t)
	_, err := admin.New(&admin.Options{Store: st}).Link(context.Background(), admin.LinkArgs{Mailbox: "a@example.com"}, nil)
	var ae *admin.Error
	if !errors.As(err, &ae) || err.Error() != "oauth is not configured" || ae.Hint == "" {
		t.Errorf("without oauth: %v", err)
	}
	m, err := oauth.New(&oauth.Options{Provider: oauth.Generic, ClientID: "test", Store: st,
		TokenURL: "http://127.0.0.1:1/token", DeviceAuthURL: "http://127.0.0.1:1/device"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.New(&admin.Options{Store: st, OAuth: m, Link: admin.LinkNone}).Link(context.Background(), admin.LinkArgs{Mailbox: "a@example.com"}, nil)
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "oauth.flow is app") || !strings.Contains(ae.Hint, "password create") {
		t.Errorf("app flow: %v", err)
	}
}

// TestCreateScopes: no scopes means "all", which lets every protocol in;
// named scopes, pop3 among them, are kept as named.
func TestCreateScopes(t *testing.T) {
	st := openStore(t)
	svc := admin.New(&admin.Options{Store: st})
	tests := []struct {
		name     string
		in, want []string
	}{
		{"nil", nil, []string{store.ScopeAll}},
		{"empty", []string{}, []string{store.ScopeAll}},
		{"all", []string{"all"}, []string{store.ScopeAll}},
		{"pop3", []string{"pop3"}, []string{store.ScopePOP3}},
		{"three", []string{"smtp", "pop3", "imap"}, []string{"imap", "pop3", "smtp"}},
	}
	for _, tc := range tests {
		res, err := svc.CreatePassword(context.Background(), admin.CreateArgs{Mailbox: "a@example.com", Name: tc.name, Scopes: tc.in})
		if err != nil || !slices.Equal(res.Scopes, tc.want) {
			t.Errorf("%s: scopes %q, %v; want %q", tc.name, res.Scopes, err, tc.want)
			continue
		}
		for _, proto := range []string{store.ScopeIMAP, store.ScopePOP3, store.ScopeSMTP} {
			_, err := st.Verify("a@example.com", res.Secret, proto, "")
			if want := tc.want[0] == store.ScopeAll || slices.Contains(tc.want, proto); (err == nil) != want {
				t.Errorf("%s over %s: %v, want ok=%v", tc.name, proto, err, want)
			}
		}
	}
	ps, err := svc.ListPasswords(context.Background(), admin.ListArgs{Mailbox: "a@example.com"})
	if err != nil || len(ps) != len(tests) {
		t.Fatalf("list: %d, %v", len(ps), err)
	}
	for _, p := range ps {
		if p.Name == "nil" && !slices.Equal(p.Scopes, []string{"all"}) {
			t.Errorf("listed nil as %q", p.Scopes)
		}
	}
}

// TestErrors: store errors keep their sentinel under the admin error, and
// invalid arguments are usage errors.
func TestErrors(t *testing.T) {
	svc := admin.New(&admin.Options{Store: openStore(t)})
	_, err := svc.RevokePassword(context.Background(), admin.RevokeArgs{Mailbox: "a@example.com", ID: "0000"})
	var ae *admin.Error
	if !errors.Is(err, store.ErrNotFound) || !errors.As(err, &ae) || ae.Code != admin.CodeFailed {
		t.Errorf("revoke unknown: %#v", err)
	}
	_, err = svc.CreatePassword(context.Background(), admin.CreateArgs{Mailbox: "a@example.com", Name: "x", Scopes: []string{"nntp"}})
	if !errors.Is(err, store.ErrInvalid) || !errors.As(err, &ae) || ae.Code != admin.CodeUsage {
		t.Errorf("bad scope: %#v", err)
	}
	_, err = svc.Backup(context.Background(), admin.BackupArgs{Path: "relative.db"})
	if !errors.As(err, &ae) || ae.Code != admin.CodeUsage {
		t.Errorf("relative backup path: %#v", err)
	}
}

// TestUnlinkWaitsForRefresh: an unlink waits for a refresh in flight (the
// refresh lock), which would otherwise save its rotated token after the
// unlink and link the mailbox again.
func TestUnlinkWaitsForRefresh(t *testing.T) {
	st := openStore(t)
	m, err := oauth.New(&oauth.Options{Provider: oauth.Generic, ClientID: "test", Store: st,
		TokenURL: "http://127.0.0.1:1/token", DeviceAuthURL: "http://127.0.0.1:1/device"})
	if err != nil {
		t.Fatal(err)
	}
	const mailbox = "ann@example.com"
	if err := st.SaveRefreshToken(m.ProviderName(), mailbox, "rt-1"); err != nil {
		t.Fatal(err)
	}
	unlock, err := st.LockRefresh(context.Background(), m.ProviderName(), mailbox)
	if err != nil {
		t.Fatal(err)
	}
	svc := admin.New(&admin.Options{Store: st, OAuth: m})
	done := make(chan error, 1)
	go func() {
		_, err := svc.Unlink(context.Background(), admin.UnlinkArgs{Mailbox: mailbox})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // time enough for an unlink that does not wait
	// The refresh, still holding the lock, saves its rotated token.
	if err := st.SaveRefreshToken(m.ProviderName(), mailbox, "rt-2"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("unlink ran while a refresh held the lock: %v", err)
	default:
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rt, err := st.LoadRefreshToken(m.ProviderName(), mailbox); err != nil || rt != "" {
		t.Fatalf("after the unlink: refresh token %q, %v; want none", rt, err)
	}
}
