package backend

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"mailgate/internal/fakeidp"
	"mailgate/proxy"
	"mailgate/proxy/oauth"
	"mailgate/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(&store.Options{Path: filepath.Join(dir, "db"), KeyFile: filepath.Join(dir, "key")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestAuthenticator(t *testing.T) {
	st := openStore(t)
	_, ann, err := st.CreatePassword("ann@example.com", "phone", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	_, bob, err := st.CreatePassword("bob@other.org", "phone", []string{proxy.ProtoIMAP}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	a := NewAuthenticator(st, []string{"example.com", "other.org"})
	tests := []struct {
		name, user, pass, proto string
		domains                 []string
		want                    error // nil: accepted
	}{
		{"right", "Ann@Example.com", ann, proxy.ProtoIMAP, nil, nil},
		{"wrong", "ann@example.com", bob, proxy.ProtoIMAP, nil, proxy.ErrAuthFailed},
		{"unknown", "zed@example.com", ann, proxy.ProtoIMAP, nil, proxy.ErrAuthFailed},
		{"scope", "bob@other.org", bob, proxy.ProtoSMTP, nil, proxy.ErrAuthFailed},
		{"domain dropped at reload", "bob@other.org", bob, proxy.ProtoIMAP, []string{"example.com"}, proxy.ErrAuthFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.domains != nil {
				a.SetDomains(tt.domains)
				defer a.SetDomains([]string{"example.com", "other.org"})
			}
			id, err := a.Authenticate(context.Background(), &proxy.LoginRequest{Username: tt.user,
				Password: tt.pass, Proto: tt.proto, Remote: netip.MustParseAddr("192.0.2.1")})
			if tt.want == nil && (err != nil || id.Mailbox != "ann@example.com" || id.PasswordID == "") {
				t.Fatalf("Authenticate = %+v, %v; want ann's identity", id, err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Authenticate err = %v, want %v", err, tt.want)
			}
		})
	}
	// A store that cannot answer is a temporary failure, not a wrong password.
	st.Close()
	if _, err := a.Authenticate(context.Background(), &proxy.LoginRequest{Username: "ann@example.com",
		Password: ann, Proto: proxy.ProtoIMAP}); !errors.Is(err, proxy.ErrUnavailable) {
		t.Fatalf("closed store: err = %v, want ErrUnavailable", err)
	}
}

func TestTokens(t *testing.T) {
	idp, err := fakeidp.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	st := openStore(t)
	m, err := oauth.New(&oauth.Options{Provider: oauth.Generic, ClientID: "c", TokenURL: idp.TokenURL(),
		DeviceAuthURL: idp.DeviceAuthURL(), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveRefreshToken(m.ProviderName(), "ann@example.com", idp.IssueRefreshToken("ann@example.com")); err != nil {
		t.Fatal(err)
	}
	tokens := NewTokens(m)
	ctx := context.Background()
	tok, err := tokens.Token(ctx, "ann@example.com")
	if err != nil || !idp.ValidFor(tok, "ann@example.com") {
		t.Fatalf("linked mailbox: %q, %v", tok, err)
	}
	if _, err := tokens.Token(ctx, "zed@example.com"); !errors.Is(err, proxy.ErrAuthFailed) {
		t.Fatalf("unlinked mailbox: err = %v, want ErrAuthFailed", err)
	}
	tokens.Invalidate("ann@example.com", tok)
	idp.FailNext(10, 503)
	if _, err := tokens.Token(ctx, "ann@example.com"); !errors.Is(err, proxy.ErrUnavailable) {
		t.Fatalf("provider down: err = %v, want ErrUnavailable", err)
	}
}
