package web

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"mailgate/store"
)

func TestSignedOutPage(t *testing.T) {
	e := newEnv(t, nil)
	p := e.browser().get("/")
	if p.code != 200 {
		t.Fatalf("status %d", p.code)
	}
	mustContain(t, p, `<form method="post" action="/auth/signin"><input type="hidden" name="direct" value="1"><button type="submit" class="primary">Sign in</button></form>`)
	// Browsers hold the redirect that follows a form to form-action.
	if csp := p.header.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "form-action 'self' https://idp.example") {
		t.Errorf("CSP %q does not let the sign-in form lead to the provider", csp)
	}
	if strings.Contains(p.body, "Sign out") {
		t.Error("signed-out page offers Sign out")
	}
}

// TestFlow: sign in, see the page, create a password, see it once, find
// its row, revoke it, revoke all after the confirmation.
func TestFlow(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	if to := b.signIn(e.user("ann@example.com")); to != "/" {
		t.Fatalf("after sign-in: sent to %q", to)
	}
	home := b.get("/")
	mustContain(t, home, "ann@example.com", "Sign out", "Create app password", "You have no app passwords.")

	form := b.get("/passwords/new")
	mustContain(t, form, `<label for="name">Name</label>`, `<input name="name" id="name" maxlength="64" required`,
		`name="scope" value="imap" checked`, `name="scope" value="smtp" checked`, `name="scope" value="pop3" checked`,
		`<option value="never" selected>`)

	res := b.create("Phone")
	if res.code != 200 || res.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("result: %d, Cache-Control %q", res.code, res.header.Get("Cache-Control"))
	}
	secret := secretOf(t, res)
	if len(secret) != 26 || !strings.Contains(newPasswordRE.FindString(res.body), secret[:4]+" "+secret[4:8]+" ") {
		t.Fatalf("password not shown in groups of four: %s", newPasswordRE.FindString(res.body))
	}
	mustContain(t, res, "mail.example.com", "993", "SSL/TLS", "587", "STARTTLS", `<script src="/static/copy.js"></script>`,
		"gives access to all protocols")
	if _, err := e.st.Verify("ann@example.com", secret, store.ScopeIMAP, "192.0.2.1"); err != nil {
		t.Fatalf("the shown password does not log in: %v", err)
	}

	ps := e.passwords("ann@example.com")
	if len(ps) != 1 || ps[0].Name != "Phone" {
		t.Fatalf("store: %+v", ps)
	}
	home = b.get("/")
	mustContain(t, home, `<tr data-password-id="`+ps[0].ID+`">`, "Phone", "All protocols", "from 192.0.2.1 over IMAP", "Revoke all")
	if strings.Contains(home.body, secret) {
		t.Fatal("the password is shown again")
	}

	if p := b.post("/passwords/"+ps[0].ID+"/revoke", nil); p.code != 303 {
		t.Fatalf("revoke: %d %s", p.code, p.body)
	}
	if ps := e.passwords("ann@example.com"); len(ps) != 0 {
		t.Fatalf("after revoke: %+v", ps)
	}

	b.create("Laptop")
	b.create("Tablet")
	mustContain(t, b.get("/"), "never used")
	confirm := b.get("/passwords/revoke-all")
	mustContain(t, confirm, "All 2 app passwords", `<button type="submit" class="danger">Confirm</button>`)
	if len(e.passwords("ann@example.com")) != 2 {
		t.Fatal("the confirmation page revoked")
	}
	if p := b.post("/passwords/revoke-all", nil); p.code != 303 {
		t.Fatalf("revoke all: %d", p.code)
	}
	if ps := e.passwords("ann@example.com"); len(ps) != 0 {
		t.Fatalf("after revoke all: %+v", ps)
	}
	if !strings.Contains(e.logs.String(), "by=ann@example.com") {
		t.Errorf("admin log lines do not name the actor:\n%s", e.logs)
	}
}

func TestCrossOriginRefused(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.signIn(e.user("ann@example.com"))
	p0 := e.addPassword("ann@example.com", "phone")
	path := "/passwords/" + p0.ID + "/revoke"
	for _, c := range []struct{ origin, site string }{
		{"https://evil.example", "cross-site"},
		{"", "cross-site"},
		{"https://evil.example", ""},
		{"https://sub.example.com", "same-site"},
	} {
		p := b.postFrom(path, nil, c.origin, c.site)
		if p.code != 403 {
			t.Errorf("origin %q site %q: status %d", c.origin, c.site, p.code)
		}
		mustContain(t, p, "nothing was changed")
		if p.header.Get("Content-Security-Policy") == "" {
			t.Error("refusal without the security headers")
		}
	}
	if n := b.postFrom("/passwords", url.Values{"name": {"x"}, "scope": {"imap"}, "expires": {"never"}}, "https://evil.example", "cross-site"); n.code != 403 {
		t.Errorf("cross-origin create: %d", n.code)
	}
	if p := b.postFrom("/auth/signout", nil, "", "cross-site"); p.code != 403 {
		t.Errorf("cross-origin sign out: %d", p.code)
	}
	if ps := e.passwords("ann@example.com"); len(ps) != 1 {
		t.Fatalf("a cross-origin POST changed something: %+v", ps)
	}
	if p := b.post(path, nil); p.code != 303 || len(e.passwords("ann@example.com")) != 0 {
		t.Fatalf("same-origin revoke: %d", p.code)
	}
}

func TestSessionCookie(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.post("/auth/signin", nil)
	req := e.idp.lastReq()
	p := b.get("/auth/callback?" + url.Values{"state": {req.state}, "code": {e.idp.approve(req.state, e.user("ann@example.com"), nil)}}.Encode())
	var cookie string
	for _, c := range p.header.Values("Set-Cookie") {
		if strings.HasPrefix(c, sessionCookie+"=") && !strings.HasPrefix(c, sessionCookie+"=;") {
			cookie = c
		}
	}
	for _, attr := range []string{"Path=/", "Secure", "HttpOnly", "SameSite=Lax", "Max-Age=28800"} {
		if !strings.Contains(cookie, "; "+attr) {
			t.Errorf("session cookie %q lacks %s", cookie, attr)
		}
	}
	if strings.Contains(cookie, "Domain=") {
		t.Errorf("__Host- cookie with a Domain: %q", cookie)
	}
	id := strings.TrimPrefix(strings.Split(cookie, ";")[0], sessionCookie+"=")

	// Sign out ends the session on the server: the old id opens nothing.
	if p := b.post("/auth/signout", nil); p.code != 303 {
		t.Fatalf("sign out: %d", p.code)
	}
	mustContain(t, b.get("/"), ">Sign in</button>")
	if e.srv.mem.session(id) != nil {
		t.Fatal("session still live after sign out")
	}
}

func TestSessionExpiry(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.signIn(e.user("ann@example.com"))
	e.clock.Add(29 * time.Minute)
	mustContain(t, b.get("/"), "Sign out") // in use: the idle time starts again
	e.clock.Add(31 * time.Minute)
	if p := b.get("/"); strings.Contains(p.body, "Sign out") {
		t.Fatal("session lived past 30 minutes idle")
	}

	b.signIn(e.user("ann@example.com"))
	for range 17 {
		e.clock.Add(29 * time.Minute)
		b.get("/")
	}
	if p := b.get("/"); strings.Contains(p.body, "Sign out") {
		t.Fatal("session lived past 8 hours")
	}
}

func TestOtherMailboxPasswordRefused(t *testing.T) {
	e := newEnv(t, nil)
	bob := e.addPassword("bob@example.com", "bob's phone")
	b := e.browser()
	b.signIn(e.user("ann@example.com"))
	e.addPassword("ann@example.com", "ann's phone")
	p := b.post("/passwords/"+bob.ID+"/revoke", nil)
	if p.code != 404 {
		t.Fatalf("status %d", p.code)
	}
	mustContain(t, p, "Nothing was changed")
	if len(e.passwords("bob@example.com")) != 1 || len(e.passwords("ann@example.com")) != 1 {
		t.Fatal("revoking another mailbox's id changed something")
	}
	if strings.Contains(b.get("/").body, bob.ID) {
		t.Fatal("another mailbox's password is listed")
	}
	if p := b.post("/passwords/not-an-id/revoke", nil); p.code != 404 {
		t.Fatalf("unknown id: %d", p.code)
	}
}

func TestNameEscaped(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.signIn(e.user("ann@example.com"))
	res := b.create(`<script>alert(1)</script>`)
	secretOf(t, res)
	for _, p := range []page{res, b.get("/")} {
		if strings.Contains(p.body, "<script>alert") {
			t.Fatalf("name not escaped:\n%s", p.body)
		}
		mustContain(t, p, "&lt;script&gt;alert(1)&lt;/script&gt;")
	}
}

func TestCreateFormBounds(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.signIn(e.user("ann@example.com"))
	long := strings.Repeat("é", 65)
	for _, c := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"name": {long}, "scope": {"imap"}, "expires": {"never"}}, "at most 64 characters"},
		{url.Values{"name": {"  "}, "scope": {"imap"}, "expires": {"never"}}, "Enter a name"},
		{url.Values{"name": {"x"}, "scope": {"nntp"}, "expires": {"never"}}, "Choose the access"},
		{url.Values{"name": {"x"}, "scope": {"all"}, "expires": {"never"}}, "Choose the access"},
		{url.Values{"name": {"x"}, "scope": {"imap"}, "expires": {"7"}}, "Choose when the password expires"},
		{url.Values{"name": {"bad\x01name"}, "scope": {"imap"}, "expires": {"never"}}, "control characters"},
	} {
		p := b.post("/passwords", c.form)
		if p.code != 400 {
			t.Errorf("%v: status %d", c.form, p.code)
		}
		mustContain(t, p, c.want, `<input name="name"`)
	}
	if n := len(e.passwords("ann@example.com")); n != 0 {
		t.Fatalf("a refused form created %d passwords", n)
	}
	ok := b.post("/passwords", url.Values{"name": {strings.Repeat("é", 64)}, "scope": {"smtp"}, "expires": {"90"}})
	secretOf(t, ok)
	ps := e.passwords("ann@example.com")
	if len(ps) != 1 || ps[0].Expires == nil || !ps[0].Expires.Equal(e.clock.Now().AddDate(0, 0, 90)) || strings.Join(ps[0].Scopes, ",") != "smtp" {
		t.Fatalf("created: %+v", ps)
	}
	dup := b.post("/passwords", url.Values{"name": {strings.ToUpper(strings.Repeat("é", 64))}, "scope": {"imap"}, "expires": {"never"}})
	mustContain(t, dup, "already have an app password with this name")
}

// TestCreateNeedsFreshSignIn: a sign-in older than ten minutes sends the
// user to the provider with fresh=true, and back to the form.
func TestCreateNeedsFreshSignIn(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.signIn(e.user("ann@example.com"))
	e.clock.Add(11 * time.Minute)

	p := b.get("/passwords/new")
	if p.code != 303 || !strings.HasPrefix(p.header.Get("Location"), "https://idp.example/authorize?") {
		t.Fatalf("stale form: %d to %q", p.code, p.header.Get("Location"))
	}
	req := e.idp.lastReq()
	if !req.fresh {
		t.Fatal("AuthURL not asked for a fresh sign-in")
	}
	// The form is a POST too: a page that moves on (form-action 'self').
	post := b.create("Phone")
	mustContain(t, post, `<meta http-equiv="refresh" content="0; url=https://idp.example/authorize?fresh=true&amp;state=`)
	if len(e.passwords("ann@example.com")) != 0 {
		t.Fatal("created with a stale sign-in")
	}
	req = e.idp.lastReq() // the browser's state cookie is the latest sign-in's

	if to := b.callback(req.state, e.idp.approve(req.state, e.user("ann@example.com"), nil), 303); to != "/passwords/new" {
		t.Fatalf("after the fresh sign-in: sent to %q", to)
	}
	mustContain(t, b.get("/passwords/new"), `<input name="name"`)
	secretOf(t, b.create("Phone"))

	// A provider that ignores max_age must not send the user round in circles.
	e.clock.Add(11 * time.Minute)
	b.get("/passwords/new")
	req = e.idp.lastReq()
	stale := e.user("ann@example.com")
	stale.AuthTime = e.clock.Now().Add(-time.Hour)
	b.callback(req.state, e.idp.approve(req.state, stale, nil), 303)
	p = b.get("/passwords/new")
	if p.code != 403 {
		t.Fatalf("second stale sign-in: %d %s", p.code, p.body)
	}
	mustContain(t, p, "did not confirm a new sign-in")
}

// TestCreateWithoutAuthTime: a provider that sends no auth_time (single
// sign-on may answer a sign-in without a new authentication) gets a sign-in
// that asks for one before the first password; the sign-in that comes back
// from it counts as fresh for ten minutes.
func TestCreateWithoutAuthTime(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	u := e.user("ann@example.com")
	u.AuthTime = time.Time{}
	b.signIn(u)

	p := b.get("/passwords/new")
	if p.code != 303 || !e.idp.lastReq().fresh {
		t.Fatalf("form after a sign-in of unknown age: %d to %q, want a fresh sign-in", p.code, p.header.Get("Location"))
	}
	req := e.idp.lastReq()
	if to := b.callback(req.state, e.idp.approve(req.state, u, nil), 303); to != "/passwords/new" {
		t.Fatalf("after the fresh sign-in: sent to %q", to)
	}
	secretOf(t, b.create("Phone"))
	e.clock.Add(11 * time.Minute)
	if p := b.create("Laptop"); p.code == 200 && newPasswordRE.MatchString(p.body) {
		t.Fatal("created eleven minutes after the fresh sign-in")
	}
	if n := len(e.passwords("ann@example.com")); n != 1 {
		t.Fatalf("%d passwords, want 1", n)
	}
}

// TestNoHSTSOverHTTP: a loopback portal on plain HTTP sends no HSTS, which
// would pin its host name to HTTPS in the browser for a year.
func TestNoHSTSOverHTTP(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.PublicURL = "http://127.0.0.1:8080" })
	if h := e.browser().get("/").header.Get("Strict-Transport-Security"); h != "" {
		t.Fatalf("HSTS %q on an http portal", h)
	}
}

func TestRequireMFA(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.RequireMFA = true })
	b := e.browser()
	u := e.user("ann@example.com")
	u.MFA = false
	b.signIn(u)
	for _, p := range []page{b.get("/passwords/new"), b.create("Phone")} {
		if p.code != 403 {
			t.Fatalf("without MFA: %d", p.code)
		}
		mustContain(t, p, "multi-factor authentication")
	}
	if len(e.passwords("ann@example.com")) != 0 {
		t.Fatal("created without MFA")
	}
	b.signIn(e.user("ann@example.com"))
	secretOf(t, b.create("Phone"))
}

func TestHeaders(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	for _, path := range []string{"/", "/static/style.css", "/static/copy.js", "/nope", "/admin"} {
		p := b.get(path)
		h := p.header
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") ||
			!strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
			strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if h.Get("Strict-Transport-Security") != "max-age=31536000" {
			t.Errorf("%s: HSTS %q", path, h.Get("Strict-Transport-Security"))
		}
		if h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
	if p := b.get("/nope"); p.code != 404 {
		t.Errorf("unknown page: %d", p.code)
	}
	if p := b.get("/static/copy.js"); p.code != 200 || !strings.Contains(p.body, "new-password") {
		t.Errorf("copy.js: %d", p.code)
	}
	// No page has inline script or style.
	b.signIn(e.user("ann@example.com"))
	for _, p := range []page{b.get("/"), b.get("/passwords/new"), b.create("Phone")} {
		if strings.Contains(p.body, "<script>") || strings.Contains(p.body, "<style") || strings.Contains(p.body, " style=") {
			t.Errorf("inline script or style:\n%s", p.body)
		}
	}
}

// TestSignedInPagesNotStored: the pages of a signed-in user list their app
// passwords, where they were last used from, and (for admins) every
// mailbox. None may be kept by the browser: after "Sign out" on a shared
// computer, Back must not show them to the next person.
func TestSignedInPagesNotStored(t *testing.T) {
	e := newEnv(t, nil)
	e.addPassword("bob@example.com", "phone")
	b := e.admin()
	for _, path := range []string{"/", "/passwords/revoke-all", "/admin", "/admin/mailbox/bob@example.com"} {
		if p := b.get(path); p.code != 200 || p.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: status %d, Cache-Control %q, want no-store", path, p.code, p.header.Get("Cache-Control"))
		}
	}
}

func TestNeedsRelinkBanner(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.st.SaveRefreshToken("microsoft", "ann@example.com", "rt"); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.signIn(e.user("ann@example.com"))
	if strings.Contains(b.get("/").body, "Needs re-link") {
		t.Fatal("banner on a working link")
	}
	if err := e.st.MarkRelink("microsoft", "ann@example.com", "invalid_grant: token revoked"); err != nil {
		t.Fatal(err)
	}
	mustContain(t, b.get("/"), "Needs re-link", "no longer accepts the sign-in", `action="/auth/signin"`)
}

func TestSignedOutActionsRefused(t *testing.T) {
	e := newEnv(t, nil)
	p0 := e.addPassword("ann@example.com", "phone")
	b := e.browser()
	if p := b.post("/passwords/"+p0.ID+"/revoke", nil); p.code != 403 {
		t.Fatalf("signed-out revoke: %d", p.code)
	}
	if p := b.get("/passwords/new"); p.code != 303 || p.header.Get("Location") != "/" {
		t.Fatalf("signed-out form: %d %q", p.code, p.header.Get("Location"))
	}
	if len(e.passwords("ann@example.com")) != 1 {
		t.Fatal("changed while signed out")
	}
}

func TestPublicURL(t *testing.T) {
	for u, ok := range map[string]bool{"https://mail.example.com": true, "http://127.0.0.1:8080": true,
		"http://localhost:8080": true, "http://[::1]:80": true, "http://mail.example.com": false, "mail.example.com": false} {
		if err := checkPublicURL(u); (err == nil) != ok {
			t.Errorf("%s: %v", u, err)
		}
	}
	if _, err := New(&Options{SignIn: newFakeSignIn()}); err == nil {
		t.Error("New without Admin")
	}
}
