package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"mailgate/internal/proxytest"
	"mailgate/internal/testclock"
	"mailgate/proxy/admin"
	"mailgate/store"
)

// fakeSignIn is the identity provider the tests control: AuthURL
// remembers what it was given, approve plays the user signing in and
// returns the code, Finish checks the verifier and nonce as a provider
// and the ID token check would.
type fakeSignIn struct {
	mu      sync.Mutex
	started map[string]authReq // by state
	codes   map[string]codeGrant
	last    authReq
	failURL error
}

type authReq struct {
	state, nonce, verifier, url string
	fresh                       bool
}

type codeGrant struct {
	req  authReq
	user User
	err  error
}

func newFakeSignIn() *fakeSignIn {
	return &fakeSignIn{started: map[string]authReq{}, codes: map[string]codeGrant{}}
}

func (f *fakeSignIn) AuthURL(_ context.Context, state, nonce, verifier string, fresh bool) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failURL != nil {
		return "", f.failURL
	}
	u := "https://idp.example/authorize?" + url.Values{"state": {state}, "fresh": {fmt.Sprint(fresh)}}.Encode()
	r := authReq{state: state, nonce: nonce, verifier: verifier, fresh: fresh, url: u}
	f.started[state], f.last = r, r
	return u, nil
}

// approve signs u in for the sign-in of state and returns the code the
// provider would send back; err, if set, is what Finish will return.
func (f *fakeSignIn) approve(state string, u User, err error) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	code := newToken()
	f.codes[code] = codeGrant{req: f.started[state], user: u, err: err}
	return code
}

func (f *fakeSignIn) Finish(_ context.Context, code, verifier, nonce string) (*User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.codes[code]
	delete(f.codes, code)
	switch {
	case !ok:
		return nil, errors.New("sign-in failed: unknown code")
	case g.req.verifier != verifier:
		return nil, errors.New("sign-in failed: pkce verifier mismatch")
	case g.req.nonce != nonce:
		return nil, errors.New("sign-in failed: nonce mismatch")
	case g.err != nil:
		return nil, g.err
	}
	u := g.user
	return &u, nil
}

func (f *fakeSignIn) lastReq() authReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// env is a portal over a real admin.Service on a temporary store.
type env struct {
	t     *testing.T
	srv   *Server
	ts    *httptest.Server
	idp   *fakeSignIn
	st    *store.Store
	svc   *admin.Service
	clock *testclock.Clock
	logs  *proxytest.LogBuffer
}

var testSettings = admin.Settings{Hostname: "mail.example.com",
	IMAP: []admin.Endpoint{{Port: 143, Security: "STARTTLS"}, {Port: 993, Security: "SSL/TLS"}},
	SMTP: []admin.Endpoint{{Port: 587, Security: "STARTTLS"}},
	POP3: []admin.Endpoint{{Port: 995, Security: "SSL/TLS"}}}

func openStore(tb testing.TB) *store.Store {
	tb.Helper()
	dir := tb.TempDir()
	st, err := store.Open(&store.Options{Path: filepath.Join(dir, "db"), KeyFile: filepath.Join(dir, "key")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// newEnv starts a portal on an httptest TLS server; edit may change the
// options first.
func newEnv(t *testing.T, edit func(*Options)) *env {
	t.Helper()
	e := &env{t: t, idp: newFakeSignIn(), st: openStore(t), logs: &proxytest.LogBuffer{},
		clock: testclock.New(time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC))}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.svc = admin.New(&admin.Options{Store: e.st, Settings: testSettings, Logger: log})
	o := &Options{Admin: e.svc, SignIn: e.idp, PublicURL: "https://mail.example.com", Admins: []string{"it@example.com"},
		Settings: testSettings, Logger: log}
	if edit != nil {
		edit(o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv.now = e.clock.Now
	e.srv = srv
	e.ts = httptest.NewTLSServer(srv)
	t.Cleanup(e.ts.Close)
	return e
}

// browser is one browser: its own cookie jar, no redirects followed.
type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := new(http.Client)
	*c = *e.ts.Client() // the server's client is shared: each browser gets its own jar
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{e: e, c: c}
}

type page struct {
	code   int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.e.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{code: resp.StatusCode, header: resp.Header, body: string(body)}
}

func (b *browser) get(path string) page {
	b.e.t.Helper()
	req, _ := http.NewRequest("GET", b.e.ts.URL+path, nil)
	return b.do(req)
}

// post sends a form as the portal's own page does: same origin.
func (b *browser) post(path string, form url.Values) page {
	b.e.t.Helper()
	return b.postFrom(path, form, b.e.ts.URL, "same-origin")
}

// postFrom sends a form with the Origin and Sec-Fetch-Site a browser
// would set ("" leaves a header out).
func (b *browser) postFrom(path string, form url.Values, origin, fetchSite string) page {
	b.e.t.Helper()
	req, _ := http.NewRequest("POST", b.e.ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if fetchSite != "" {
		req.Header.Set("Sec-Fetch-Site", fetchSite)
	}
	return b.do(req)
}

// signIn goes through the whole sign-in as u and returns where the
// callback sent the browser.
func (b *browser) signIn(u User) string {
	b.e.t.Helper()
	p := b.post("/auth/signin", nil)
	if p.code != 200 || !strings.Contains(p.body, "https://idp.example/authorize") {
		b.e.t.Fatalf("sign-in start: %d %s", p.code, p.body)
	}
	req := b.e.idp.lastReq()
	return b.callback(req.state, b.e.idp.approve(req.state, u, nil), 303)
}

// callback is the provider sending the browser back.
func (b *browser) callback(state, code string, want int) string {
	b.e.t.Helper()
	p := b.get("/auth/callback?" + url.Values{"state": {state}, "code": {code}}.Encode())
	if p.code != want {
		b.e.t.Fatalf("callback: status %d, want %d: %s", p.code, want, p.body)
	}
	return p.header.Get("Location")
}

// user is a freshly signed-in user.
func (e *env) user(mailbox string) User {
	return User{Mailbox: mailbox, AuthTime: e.clock.Now(), MFA: true}
}

// create creates a password through the form as it comes (every access
// box checked) and returns the result page.
func (b *browser) create(name string) page {
	b.e.t.Helper()
	return b.post("/passwords", url.Values{"name": {name}, "scope": {"imap", "smtp", "pop3"}, "expires": {"never"}})
}

var newPasswordRE = regexp.MustCompile(`<code id="new-password">([^<]*)</code>`)

// secretOf returns the password shown on a result page, spaces removed.
func secretOf(t *testing.T, p page) string {
	t.Helper()
	m := newPasswordRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no new-password on the page: %d %s", p.code, p.body)
	}
	return strings.ReplaceAll(m[1], " ", "")
}

func (e *env) passwords(mailbox string) []admin.AppPassword {
	e.t.Helper()
	ps, err := e.svc.ListPasswords(context.Background(), admin.ListArgs{Mailbox: mailbox})
	if err != nil {
		e.t.Fatal(err)
	}
	return ps
}

func (e *env) addPassword(mailbox, name string) admin.AppPassword {
	e.t.Helper()
	r, err := e.svc.CreatePassword(context.Background(), admin.CreateArgs{Mailbox: mailbox, Name: name})
	if err != nil {
		e.t.Fatal(err)
	}
	return r.AppPassword
}

func mustContain(t *testing.T, p page, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(p.body, s) {
			t.Fatalf("page (status %d) lacks %q:\n%s", p.code, s, p.body)
		}
	}
}
