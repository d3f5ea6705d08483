package oauth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"testing"

	"mailgate/internal/fakeidp"

	"golang.org/x/oauth2"
)

func TestClientCredentialsSharedPerTenant(t *testing.T) {
	t.Parallel()
	srv := newServer(t, &fakeidp.Options{ClientID: "cid", ClientSecret: "s3cret"})
	m := newManager(t, &Options{Provider: Microsoft, Flow: App, Tenant: "contoso",
		ClientID: "cid", ClientSecret: "s3cret", TokenURL: srv.TokenURL()})
	ta, tb := mustToken(t, m, alice), mustToken(t, m, bob)
	if ta != tb || !srv.ValidFor(ta, alice) || !srv.ValidFor(ta, bob) {
		t.Fatal("app token not shared or not valid for both mailboxes")
	}
	if n := srv.TokenRequests(); n != 1 {
		t.Fatalf("%d token requests, want 1 for the tenant", n)
	}
	m.Invalidate(bob, ta) // dropped for everyone: it is one token
	if tc := mustToken(t, m, alice); tc == ta {
		t.Fatal("shared token not refreshed after Invalidate")
	}
}

func TestClientCredentialsWrongSecret(t *testing.T) {
	t.Parallel()
	srv := newServer(t, &fakeidp.Options{ClientID: "cid", ClientSecret: "s3cret"})
	m := newManager(t, &Options{Provider: Generic, Flow: App, ClientID: "cid",
		ClientSecret: "expired", TokenURL: srv.TokenURL()})
	_, err := m.Token(t.Context(), alice)
	if !errors.Is(err, ErrConfig) || !errors.Is(err, ErrTransient) || errors.Is(err, ErrRelink) {
		t.Fatalf("err = %v, want ErrConfig (and so ErrTransient)", err)
	}
	if srv.TokenRequests() != 1 {
		t.Fatal("a refused client configuration was retried")
	}
}

// serviceAccountJSON writes a Google key file for a fresh RSA key that srv
// trusts.
func serviceAccountJSON(t *testing.T, srv *fakeidp.Server, email string) []byte {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	srv.RegisterServiceAccount(email, &key.PublicKey)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	js, _ := json.Marshal(map[string]string{"type": "service_account", "client_email": email,
		"private_key_id": "k1", "private_key": string(pemKey), "token_uri": srv.TokenURL()})
	return js
}

func TestGoogleServiceAccount(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil)
	js := serviceAccountJSON(t, srv, "gate@proj.iam.gserviceaccount.com")
	m := newManager(t, &Options{Provider: Google, Flow: App, ServiceAccountJSON: js})
	ta, tb := mustToken(t, m, alice), mustToken(t, m, bob)
	if !srv.ValidFor(ta, alice) || srv.ValidFor(ta, bob) || !srv.ValidFor(tb, bob) {
		t.Fatal("service account tokens must be per mailbox (sub = mailbox)")
	}
	if mustToken(t, m, alice) != ta || srv.TokenRequests() != 2 {
		t.Fatal("service account token not cached")
	}

	// A key the provider does not know: refused, reported as the admin's
	// problem, never as a re-link.
	other := newServer(t, nil)
	bad := newManager(t, &Options{Provider: Google, Flow: App,
		ServiceAccountJSON: serviceAccountJSON(t, other, "gate@proj.iam.gserviceaccount.com"),
		TokenURL:           srv.TokenURL()})
	if _, err := bad.Token(t.Context(), alice); !errors.Is(err, ErrConfig) {
		t.Fatalf("unknown key: %v, want ErrConfig", err)
	}
}

func TestNewRejects(t *testing.T) {
	store := newMemStore()
	tests := []struct {
		name string
		o    Options
	}{
		{"unknown provider", Options{Provider: "yahoo", ClientID: "c", Store: store}},
		{"unknown flow", Options{Provider: Microsoft, Flow: "implicit", ClientID: "c", Store: store}},
		{"no client id", Options{Provider: Microsoft, Store: store}},
		{"delegated without store", Options{Provider: Microsoft, ClientID: "c"}},
		{"generic without token url", Options{Provider: Generic, ClientID: "c", Store: store}},
		{"microsoft app without tenant", Options{Provider: Microsoft, Flow: App, ClientID: "c", ClientSecret: "s"}},
		{"microsoft delegated on common", Options{Provider: Microsoft, Tenant: "common", ClientID: "c", Store: store}},
		{"app without secret", Options{Provider: Microsoft, Flow: App, Tenant: "t", ClientID: "c"}},
		{"google app without key", Options{Provider: Google, Flow: App}},
		{"google app bad key", Options{Provider: Google, Flow: App,
			ServiceAccountJSON: []byte(`{"type":"service_account","client_email":"a@b","private_key":"x"}`)}},
	}
	for _, tt := range tests {
		if _, err := New(&tt.o); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	m, err := New(&Options{Provider: "Microsoft", ClientID: "c", Store: store, AllowedTenants: []string{"t"}})
	if err != nil || m.ProviderName() != string(Microsoft) ||
		m.cfg.Endpoint.TokenURL != "https://login.microsoftonline.com/common/oauth2/v2.0/token" ||
		len(m.cfg.Scopes) != len(microsoftDelegated) {
		t.Fatalf("microsoft defaults: %v %+v", err, m)
	}
}

func TestClassify(t *testing.T) {
	re := func(status int, code, desc string) error {
		return &oauth2.RetrieveError{Response: &http.Response{StatusCode: status},
			ErrorCode: code, ErrorDescription: desc}
	}
	tests := []struct {
		err    error
		want   class
		reason string
	}{
		{re(400, "invalid_grant", "AADSTS70043: The refresh token has expired.\r\nTrace ID: 1"),
			dead, "invalid_grant: AADSTS70043: The refresh token has expired."},
		{re(400, "interaction_required", "AADSTS50076: MFA"), dead, "interaction_required: AADSTS50076: MFA"},
		{re(401, "invalid_client", "AADSTS7000222: secret expired"), config, "invalid_client: AADSTS7000222: secret expired"},
		{re(400, "unauthorized_client", ""), config, "unauthorized_client"},
		{re(400, "invalid_scope", ""), config, "invalid_scope"},
		{re(503, "", ""), transient, "HTTP 503"},
		{re(500, "invalid_grant", ""), transient, "invalid_grant"},
		{re(429, "", ""), transient, "HTTP 429"},
		{re(400, "temporarily_unavailable", ""), transient, "temporarily_unavailable"},
		{&oauth2.RetrieveError{Response: &http.Response{StatusCode: 400},
			Body: []byte(`{"error":"invalid_grant","error_description":"Invalid email or User ID"}`)},
			dead, "invalid_grant: Invalid email or User ID"},
		{errors.New("dial tcp: connection refused"), transient, "dial tcp: connection refused"},
		// A provider's overlong texts are cut, between characters.
		{re(400, strings.Repeat("x", 100), ""), config, strings.Repeat("x", 64)},
		{re(400, "invalid_grant", strings.Repeat("a", 299)+"é and more"), dead, "invalid_grant: " + strings.Repeat("a", 299)},
	}
	for _, tt := range tests {
		if c, r := classify(tt.err); c != tt.want || r != tt.reason {
			t.Errorf("classify(%v) = %v %q, want %v %q", tt.err, c, r, tt.want, tt.reason)
		}
	}
}
