package fakeidp

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// claimsOf decodes the payload of an ID token without checking its
// signature (TestIDTokenVerifies checks that).
func claimsOf(t *testing.T, idToken any) map[string]any {
	t.Helper()
	s, _ := idToken.(string)
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		t.Fatalf("ID token %q", s)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestIDTokenClaims: ID tokens carry the tenant ID when one is set, and
// SetIDTokenMailbox makes them name another address than the one the
// tokens open.
func TestIDTokenClaims(t *testing.T) {
	s := newTestServer(t, &Options{TenantID: "11111111-2222-3333-4444-555555555555"})
	refresh := func() map[string]any {
		t.Helper()
		_, body := post(t, s.TokenURL(), url.Values{"grant_type": {"refresh_token"},
			"refresh_token": {s.IssueRefreshToken("mallory@x.org")}})
		if m, ok := s.Valid(body["access_token"].(string)); !ok || m != "mallory@x.org" {
			t.Fatalf("access token for %q %v, want mallory@x.org", m, ok)
		}
		return claimsOf(t, body["id_token"])
	}
	c := refresh()
	if c["email"] != "mallory@x.org" || c["preferred_username"] != "mallory@x.org" ||
		c["tid"] != "11111111-2222-3333-4444-555555555555" {
		t.Fatalf("claims %v", c)
	}
	s.SetIDTokenMailbox("Victim@x.org")
	if c := refresh(); c["email"] != "victim@x.org" || c["preferred_username"] != "victim@x.org" || c["sub"] != "sub-mallory@x.org" {
		t.Fatalf("claims after SetIDTokenMailbox: %v", c)
	}
	s.SetIDTokenMailbox("")
	if c := refresh(); c["email"] != "mallory@x.org" {
		t.Fatalf("claims after SetIDTokenMailbox(\"\"): %v", c)
	}
}
