package fakeidp

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

const testRedirect = "http://127.0.0.1:9/cb"

func TestDiscovery(t *testing.T) {
	s := newTestServer(t, nil)
	resp, err := http.Get(s.URL() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"issuer": s.URL(), "authorization_endpoint": s.AuthURL(),
		"token_endpoint": s.TokenURL(), "jwks_uri": s.JWKSURL(),
		"device_authorization_endpoint": s.DeviceAuthURL()}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("%s = %v, want %v", k, d[k], v)
		}
	}
	for k, v := range map[string]string{"id_token_signing_alg_values_supported": "RS256",
		"code_challenge_methods_supported": "S256", "response_types_supported": "code"} {
		if l, _ := d[k].([]any); !slices.Contains(l, any(v)) {
			t.Errorf("%s = %v, want %s in it", k, d[k], v)
		}
	}
	s.SetIssuer("https://elsewhere.example")
	if p, err := oidc.NewProvider(t.Context(), s.URL()); err == nil {
		t.Fatalf("discovery with another issuer accepted: %v", p)
	}
}

// verifier discovers s and returns go-oidc's ID token verifier for client.
func verifier(t *testing.T, s *Server, client string) *oidc.IDTokenVerifier {
	t.Helper()
	p, err := oidc.NewProvider(t.Context(), s.URL())
	if err != nil {
		t.Fatal(err)
	}
	return p.Verifier(&oidc.Config{ClientID: client})
}

type testClaims struct {
	Email    string   `json:"email"`
	AuthTime int64    `json:"auth_time"`
	AMR      []string `json:"amr"`
	Roles    []string `json:"roles"`
}

// verify checks raw with v and returns its claims and nonce.
func verify(t *testing.T, v *oidc.IDTokenVerifier, raw any) (testClaims, string) {
	t.Helper()
	s, _ := raw.(string)
	idt, err := v.Verify(t.Context(), s)
	if err != nil {
		t.Fatalf("ID token does not verify: %v", err)
	}
	var c testClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c, idt.Nonce
}

// authorize runs the non-interactive authorization endpoint and redeems
// the code; it returns the token response.
func authorize(t *testing.T, s *Server, extra url.Values) map[string]any {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	q := url.Values{"response_type": {"code"}, "client_id": {"cid"}, "redirect_uri": {testRedirect},
		"state": {"st"}, "code_challenge_method": {"S256"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}}
	for k, v := range extra {
		q[k] = v
	}
	loc := redirected(t, noFollow(nil), s.AuthURL()+"?"+q.Encode())
	code, body := post(t, s.TokenURL(), url.Values{"grant_type": {"authorization_code"},
		"client_id": {"cid"}, "code": {loc.Get("code")}, "redirect_uri": {testRedirect},
		"code_verifier": {verifier}})
	if code != 200 {
		t.Fatalf("token: %d %v", code, body)
	}
	return body
}

func noFollow(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// redirected GETs u and returns the query of the redirect to the client.
func redirected(t *testing.T, c *http.Client, u string) url.Values {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return location(t, resp)
}

func location(t *testing.T, resp *http.Response) url.Values {
	t.Helper()
	loc, err := resp.Location()
	if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), testRedirect) {
		t.Fatalf("authorize: %s, Location %v", resp.Status, loc)
	}
	return loc.Query()
}

// TestIDTokenVerifies: the ID tokens of every delegated grant verify with
// the published keys, and carry nonce, auth_time, amr and roles.
func TestIDTokenVerifies(t *testing.T) {
	s := newTestServer(t, &Options{TenantID: "t1"})
	v := verifier(t, s, "cid")
	c, nonce := verify(t, v, authorize(t, s, url.Values{"login_hint": {"A@x.org"}, "nonce": {"n-1"}})["id_token"])
	if nonce != "n-1" || c.Email != "a@x.org" || !slices.Equal(c.AMR, defaultAMR) || c.Roles != nil ||
		time.Since(time.Unix(c.AuthTime, 0)) > time.Minute {
		t.Fatalf("claims %+v, nonce %q", c, nonce)
	}
	s.SetAMR("a@x.org", []string{"pwd"})
	s.SetRoles("a@x.org", []string{"mailgate.admin"})
	c, _ = verify(t, v, authorize(t, s, url.Values{"login_hint": {"a@x.org"}})["id_token"])
	if !slices.Equal(c.AMR, []string{"pwd"}) || !slices.Equal(c.Roles, []string{"mailgate.admin"}) {
		t.Fatalf("after SetAMR and SetRoles: %+v", c)
	}
	// Refresh and device flow ID tokens are signed too.
	_, body := post(t, s.TokenURL(), url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {s.IssueRefreshToken("b@x.org")}, "client_id": {"cid"}})
	if c, nonce = verify(t, v, body["id_token"]); c.Email != "b@x.org" || nonce != "" {
		t.Fatalf("refresh ID token %+v, nonce %q", c, nonce)
	}
	_, dev := post(t, s.DeviceAuthURL(), url.Values{"client_id": {"cid"}})
	s.ApproveDevice(dev["user_code"].(string), "c@x.org")
	_, body = post(t, s.TokenURL(), url.Values{"grant_type": {grantDevice}, "client_id": {"cid"},
		"device_code": {dev["device_code"].(string)}})
	if c, _ = verify(t, v, body["id_token"]); c.Email != "c@x.org" {
		t.Fatalf("device ID token %+v", c)
	}
	s.SetIDTokenAudience("other")
	raw, _ := authorize(t, s, url.Values{"login_hint": {"a@x.org"}})["id_token"].(string)
	if _, err := v.Verify(t.Context(), raw); err == nil {
		t.Fatal("ID token for another audience verified")
	}
}

// TestAuthTime: a sign-in is reused (single sign-on) until prompt=login,
// max_age=0 or an exceeded max_age asks for a fresh one.
func TestAuthTime(t *testing.T) {
	s := newTestServer(t, nil)
	v := verifier(t, s, "cid")
	authTime := func(extra url.Values) time.Time {
		t.Helper()
		extra.Set("login_hint", "a@x.org")
		c, _ := verify(t, v, authorize(t, s, extra)["id_token"])
		return time.Unix(c.AuthTime, 0)
	}
	first := authTime(url.Values{})
	s.AgeSignIns(time.Hour)
	if got := authTime(url.Values{}); !got.Equal(first.Add(-time.Hour)) {
		t.Fatalf("auth_time %v, want the aged %v", got, first.Add(-time.Hour))
	}
	for _, fresh := range []url.Values{{"prompt": {"login"}}, {"max_age": {"0"}}, {"max_age": {"600"}}} {
		s.AgeSignIns(time.Hour)
		if got := authTime(fresh); time.Since(got) > time.Minute {
			t.Errorf("%v: auth_time %v, want now", fresh, got)
		}
	}
}

var requestField = regexp.MustCompile(`name="request" value="([^"]+)"`)

// signInForm GETs the authorization URL and returns the form's request id,
// failing unless the page is the sign-in form.
func signInForm(t *testing.T, c *http.Client, s *Server, q url.Values) string {
	t.Helper()
	resp, err := c.Get(testAuthURL(s, q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	page := string(b)
	for _, want := range []string{`<label for="mailbox">Email</label>`, `name="mailbox"`,
		`<button type="submit">Sign in to fakeidp</button>`} {
		if resp.StatusCode != 200 || !strings.Contains(page, want) {
			t.Fatalf("sign-in page: %s, no %s in\n%s", resp.Status, want, page)
		}
	}
	m := requestField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no request field in\n%s", page)
	}
	return m[1]
}

// testAuthURL is an authorization request to s, with q added.
func testAuthURL(s *Server, q url.Values) string {
	base := url.Values{"response_type": {"code"}, "client_id": {"cid"}, "redirect_uri": {testRedirect},
		"state": {"st-1"}, "nonce": {"n-1"}, "code_challenge_method": {"S256"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier("v")}}
	for k, v := range q {
		base[k] = v
	}
	return s.AuthURL() + "?" + base.Encode()
}

// TestInteractive: a browser gets the sign-in form, the submitted form
// redirects with code and state, and the session cookie signs the next
// request in without the form unless a fresh sign-in is asked for.
func TestInteractive(t *testing.T) {
	s := newTestServer(t, nil)
	s.SetInteractive(true)
	jar, _ := cookiejar.New(nil)
	c := noFollow(jar)
	id := signInForm(t, c, s, nil)
	resp, err := c.PostForm(s.AuthURL(), url.Values{"request": {id}, "mailbox": {"not-an-address"}})
	if err != nil || resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad mailbox: %v %v", err, resp.Status)
	}
	resp.Body.Close()
	resp, err = c.PostForm(s.AuthURL(), url.Values{"request": {id}, "mailbox": {"A@x.org"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if q := location(t, resp); q.Get("code") == "" || q.Get("state") != "st-1" {
		t.Fatalf("redirect query %v", q)
	}
	if resp, _ := c.PostForm(s.AuthURL(), url.Values{"request": {id}, "mailbox": {"a@x.org"}}); resp.StatusCode != 400 {
		t.Fatalf("form posted twice: %s", resp.Status)
	}
	if q := redirected(t, c, testAuthURL(s, nil)); q.Get("code") == "" { // single sign-on
		t.Fatalf("signed-in browser: %v", q)
	}
	signInForm(t, c, s, url.Values{"prompt": {"login"}})
	signInForm(t, c, s, url.Values{"max_age": {"0"}})
	signInForm(t, c, s, url.Values{"login_hint": {"b@x.org"}})
	s.EndSessions()
	signInForm(t, c, s, nil)
}
