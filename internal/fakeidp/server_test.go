package fakeidp

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2/jwt"
)

func newTestServer(t *testing.T, opts *Options) *Server {
	t.Helper()
	s, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// post sends a form and decodes the JSON answer.
func post(t *testing.T, u string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func TestRefreshRotates(t *testing.T) {
	s := newTestServer(t, nil)
	rt := s.IssueRefreshToken("A@x.org")
	code, body := post(t, s.TokenURL(), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	if code != 200 || body["refresh_token"] == rt || body["id_token"] == nil {
		t.Fatalf("refresh: %d %v", code, body)
	}
	if m, ok := s.Valid(body["access_token"].(string)); !ok || m != "a@x.org" {
		t.Fatalf("Valid = %q %v", m, ok)
	}
	code, body = post(t, s.TokenURL(), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	if code != 400 || body["error"] != "invalid_grant" || s.Refreshes("a@x.org") != 2 {
		t.Fatalf("reused refresh token: %d %v", code, body)
	}
}

func TestIntrospect(t *testing.T) {
	s := newTestServer(t, nil)
	at := s.MintAccessToken("a@x.org")
	_, body := post(t, s.IntrospectURL(), url.Values{"token": {at}})
	if body["active"] != true || body["email"] != "a@x.org" {
		t.Fatalf("active token: %v", body)
	}
	req, _ := http.NewRequest("GET", s.IntrospectURL(), nil)
	req.Header.Set("Authorization", "Bearer "+at)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("bearer introspection: %v", err)
	} else {
		resp.Body.Close()
	}
	s.ExpireAccessTokens()
	if _, body = post(t, s.IntrospectURL(), url.Values{"token": {at}}); body["active"] != false || len(body) != 1 {
		t.Fatalf("expired token: %v", body)
	}
}

func TestClientAuth(t *testing.T) {
	s := newTestServer(t, &Options{ClientID: "cid", ClientSecret: "sec"})
	tests := []struct {
		form url.Values
		want int
	}{
		{url.Values{"client_id": {"cid"}, "client_secret": {"sec"}}, 200},
		{url.Values{"client_id": {"cid"}}, 401},
		{url.Values{"client_id": {"cid"}, "client_secret": {"bad"}}, 401},
		{url.Values{"client_id": {"other"}, "client_secret": {"sec"}}, 401},
	}
	for _, tt := range tests {
		tt.form.Set("grant_type", "client_credentials")
		if code, body := post(t, s.TokenURL(), tt.form); code != tt.want {
			t.Errorf("%v: %d %v", tt.form, code, body)
		}
	}
}

func TestAuthorizeNeedsS256(t *testing.T) {
	s := newTestServer(t, nil)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"response_type": {"code"}, "redirect_uri": {"http://localhost/cb"},
		"login_hint": {"a@x.org"}, "state": {"st"}, "code_challenge": {"abc"}}
	for method, want := range map[string]int{"plain": 400, "S256": 302} {
		q.Set("code_challenge_method", method)
		resp, err := c.Get(s.AuthURL() + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %s", method, resp.Status)
		}
	}
}

func TestFailNextAndDown(t *testing.T) {
	s := newTestServer(t, nil)
	s.FailNext(1, 429)
	form := url.Values{"grant_type": {"client_credentials"}}
	if code, _ := post(t, s.TokenURL(), form); code != 429 {
		t.Fatalf("FailNext: %d", code)
	}
	if code, _ := post(t, s.TokenURL(), form); code != 200 {
		t.Fatalf("after FailNext: %d", code)
	}
	s.SetDown(true)
	if _, err := http.PostForm(s.TokenURL(), form); err == nil {
		t.Fatal("down server answered")
	}
	if err := s.SetDown(false); err != nil {
		t.Fatal(err)
	}
	if code, _ := post(t, s.TokenURL(), form); code != 200 {
		t.Fatalf("back up: %d", code)
	}
}

func TestServiceAccount(t *testing.T) {
	s := newTestServer(t, nil)
	js, err := s.NewServiceAccount("sa@p.iam")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		PrivateKey string `json:"private_key"`
	}
	json.Unmarshal(js, &f)
	cfg := &jwt.Config{Email: "sa@p.iam", PrivateKey: []byte(f.PrivateKey), TokenURL: s.TokenURL(),
		Scopes: []string{MailScope}, Subject: "a@x.org"}
	tok, err := cfg.TokenSource(t.Context()).Token()
	if err != nil || !s.ValidFor(tok.AccessToken, "a@x.org") || s.ValidFor(tok.AccessToken, "b@x.org") {
		t.Fatalf("service account token: %v", err)
	}
	cfg.Email = "intruder@p.iam"
	if _, err := cfg.TokenSource(t.Context()).Token(); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("unknown issuer accepted: %v", err)
	}
}

func TestDevicePage(t *testing.T) {
	s := newTestServer(t, nil)
	_, body := post(t, s.DeviceAuthURL(), url.Values{"client_id": {"c"}})
	uc := body["user_code"].(string)
	resp, err := http.PostForm(s.URL()+"/device", url.Values{"user_code": {uc}, "mailbox": {"a@x.org"}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("approve via page: %v %v", err, resp.Status)
	}
	resp.Body.Close()
	code, tok := post(t, s.TokenURL(), url.Values{"grant_type": {grantDevice}, "client_id": {"c"},
		"device_code": {body["device_code"].(string)}})
	if code != 200 || !s.ValidFor(tok["access_token"].(string), "a@x.org") || len(s.PendingUserCodes()) != 0 {
		t.Fatalf("device token: %d %v", code, tok)
	}
}
