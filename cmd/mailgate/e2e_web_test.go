package main

import (
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-imap/v2"
)

// The portal end to end (issue 14, "Done when"): headless Chromium against
// the real daemon binary, fakeidp's sign-in form as the provider, and
// Dovecot/Postfix behind mailgate. Run with MAILGATE_SCREENSHOTS=1 to
// rewrite docs/img/portal-*.png.

// TestWebUserFlow: a user signs in (which links the mailbox), creates an
// app password and sees it once, downloads the Apple profile, logs in with
// the password over IMAP and SMTP, sees "last used" appear, revokes it and
// watches the IMAP session end, then creates two more and revokes all.
func TestWebUserFlow(t *testing.T) {
	t.Parallel()
	e := newWebE2E(t)
	const user = "ada@example.com"
	b := newTab(t)
	docs := b.watchDocuments()

	b.open(e.portal("/"))
	if u := b.url(); !strings.HasPrefix(u, e.portal("/")) || !b.has(byText("", "Sign in")) {
		t.Fatalf("signed-out page %s has no \"Sign in\" (or redirected by itself):\n%s", u, b.bodyText())
	}
	b.screenshot("signed-out")
	e.mustSignIn(b, user)
	if a := e.account(user); !a.Linked || a.NeedsRelink {
		t.Fatalf("the sign-in did not link %s: %+v", user, a)
	}

	e.openCreateForm(b)
	b.fill("name", "Outlook")
	b.screenshot("create")
	password := e.submitCreate(b, "Outlook")
	if password == "" {
		t.Fatalf("no #new-password after create:\n%s", b.bodyText())
	}
	if cc := docs.header("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("the page with the password has Cache-Control %q, want no-store", cc)
	}
	_, imapsPort := splitLocal(e.imaps)
	if body := b.bodyText(); !strings.Contains(body, "localhost") || !strings.Contains(body, imapsPort) {
		t.Errorf("the result page does not show the host and IMAP port %s:\n%s", imapsPort, body)
	}
	b.screenshot("result")
	e.checkAppleLink(t, b, user, password)

	// Shown once: not on the user's page, not when going back to it.
	resultURL := b.url()
	b.open(e.portal("/"))
	shown := func() bool { return strings.Contains(groupless(b.bodyText()), groupless(password)) }
	if shown() {
		t.Errorf("the user's page shows the password")
	}
	b.try(chromedp.NavigateBack()) // may end on the browser's resubmission page, which is fine
	if shown() {
		t.Errorf("going back to %s shows the password again", resultURL)
	}

	// Logins through mailgate, with the group spaces and without.
	c := e.loginIMAP(user, password, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	if err := e.sendSMTP(user, groupless(password), user, user, e2eMessage("portal", user)); err != nil {
		t.Fatalf("send with the portal's password: %v", err)
	}
	id := e.rowID(b, "Outlook")
	e.waitRow(b, id, "a last use", func(row string) bool { return row != "" && !strings.Contains(row, "never used") })
	b.screenshot("user")

	b.clickText(rowSel(id), "Revoke")
	waitClosed(t, c, "password revoked in the portal")
	if b.text(rowSel(id)) != "" {
		t.Errorf("the revoked password's row is still shown")
	}
	if code := e.imapLoginCode(user, password); code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("login with the revoked password: NO [%s], want AUTHENTICATIONFAILED", code)
	}

	p1, _ := e.createPassword(b, "iPhone")
	p2, _ := e.createPassword(b, "Thunderbird")
	b.open(e.portal("/"))
	b.clickText("", "Revoke all")
	if ps := e.passwords(user); len(ps) != 2 {
		t.Fatalf("\"Revoke all\" revoked before \"Confirm\": %d passwords left", len(ps))
	}
	b.clickText("", "Confirm")
	if ps := e.passwords(user); len(ps) != 0 {
		t.Fatalf("after \"Revoke all\" and \"Confirm\": %+v", ps)
	}
	b.open(e.portal("/"))
	if b.has(`document.querySelector("tr[data-password-id]")`) {
		t.Errorf("the user's page still lists passwords after revoke all:\n%s", b.bodyText())
	}
	for _, p := range []string{p1, p2} {
		if code := e.imapLoginCode(user, p); code != imap.ResponseCodeAuthenticationFailed {
			t.Errorf("login after revoke all: NO [%s], want AUTHENTICATIONFAILED", code)
		}
	}
}

// checkAppleLink downloads the profile behind the result page's "Apple"
// link: a property list with the account's fields; the link works once.
func (e *e2e) checkAppleLink(t *testing.T, b *tab, mailbox, password string) {
	t.Helper()
	href := eval[string](b, `(() => { const a = [...document.querySelectorAll("a")]
		.find(a => a.textContent.includes("Apple")); return a ? a.href : "" })()`)
	if href == "" {
		t.Fatalf("no link with \"Apple\" on the result page:\n%s", b.bodyText())
	}
	status, ctype, body := e.download(b, href)
	if status != http.StatusOK || !strings.HasPrefix(ctype, "application/x-apple-aspen-config") {
		t.Fatalf("GET %s: %d %q, want 200 application/x-apple-aspen-config:\n%s", href, status, ctype, body)
	}
	e.checkProfile(t, body, mailbox, password)
	if status, _, _ := e.download(b, href); status == http.StatusOK {
		t.Errorf("the single-use profile link %s worked twice", href)
	}
}

// TestWebAdmin: an admin selects two mailboxes on /admin and deletes all
// their app passwords (live sessions end) while a third keeps its own; a
// signed-in user who is not an admin gets 403 on /admin.
func TestWebAdmin(t *testing.T) {
	t.Parallel()
	const it = "it@example.com"
	e := newWebE2E(t, it)
	const ann, bob, cleo = "ann@example.com", "bob@example.com", "cleo@example.com"
	annPass := e.user(ann)
	e.appPassword(bob)
	e.appPassword(bob)
	cleoPass, cleoID := e.appPassword(cleo)
	sess := e.loginIMAP(ann, annPass, nil)

	user := newTab(t)
	e.mustSignIn(user, cleo)
	user.open(e.portal("/admin"))
	if s := user.status(); s != http.StatusForbidden {
		t.Errorf("/admin for a user who is not an admin: status %d, want 403:\n%s", s, user.bodyText())
	}

	adm := newTab(t)
	e.mustSignIn(adm, it)
	adm.open(e.portal("/admin"))
	if s := adm.status(); s != http.StatusOK {
		t.Fatalf("/admin for an admin: status %d:\n%s", s, adm.bodyText())
	}
	for _, m := range []string{ann, bob, cleo} {
		if !adm.has(chromedp.JSPath(fmt.Sprintf(`document.querySelector(%s)`, jsString(mailboxBox(m))))) {
			t.Fatalf("/admin has no <tr data-mailbox=%q> with its checkbox:\n%s", m, adm.bodyText())
		}
	}
	adm.screenshot("admin")
	for _, m := range []string{ann, bob} {
		if !eval[bool](adm, fmt.Sprintf(`(() => { const c = document.querySelector(%s); c.click(); return c.checked })()`,
			jsString(mailboxBox(m)))) {
			t.Fatalf("the checkbox of %s does not tick", m)
		}
	}
	adm.clickText("", "Delete all app passwords of selected users")
	if body := adm.bodyText(); !strings.Contains(body, ann) || !strings.Contains(body, bob) || strings.Contains(body, cleo) {
		t.Errorf("the confirmation page does not name exactly the selected mailboxes:\n%s", body)
	}
	if ps := e.passwords(bob); len(ps) != 2 {
		t.Fatalf("deleted before \"Confirm\": bob has %d passwords", len(ps))
	}
	adm.clickText("", "Confirm")
	waitClosed(t, sess, "admin deleted the passwords")
	for _, m := range []string{ann, bob} {
		if ps := e.passwords(m); len(ps) != 0 {
			t.Errorf("%s still has passwords: %+v", m, ps)
		}
	}
	if ps := e.passwords(cleo); len(ps) != 1 || ps[0].ID != cleoID {
		t.Errorf("cleo's passwords after the admin's delete: %+v, want only %s", ps, cleoID)
	}
	if code := e.imapLoginCode(cleo, cleoPass); code != "" {
		t.Errorf("cleo's own password stopped working: NO [%s]", code)
	}
}

// mailboxBox is the CSS selector of a mailbox's checkbox in its /admin row.
func mailboxBox(m string) string {
	return fmt.Sprintf(`tr[data-mailbox=%s] input[type=checkbox][name=mailbox][value=%s]`, jsString(m), jsString(m))
}

// TestWebCrossOrigin: pages on another origin of the same site (another
// port of localhost, so the SameSite=Lax cookie goes along) post forms to
// the portal in the signed-in user's browser. Every such POST is refused
// with a 4xx and changes nothing.
func TestWebCrossOrigin(t *testing.T) {
	t.Parallel()
	e := newWebE2E(t)
	const user = "carol@example.com"
	b := newTab(t)
	e.mustSignIn(b, user)
	pass, id := e.appPassword(user)

	forms := map[string]string{ // path on the attacker's site -> the portal's endpoint
		"/revoke-all": e.portal("/passwords/revoke-all"),
		"/revoke":     e.portal("/passwords/" + id + "/revoke"),
		"/create":     e.portal("/passwords"),
	}
	evil := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%s"><input name="name" value="evil"></form>
<script>document.forms[0].submit()</script>`, html.EscapeString(forms[r.URL.Path]))
	}))
	t.Cleanup(evil.Close)
	_, port := splitLocal(evil.Listener.Addr().String())
	for path, target := range forms {
		b.try(chromedp.Navigate("https://localhost:" + port + path)) // the page leaves at once
		b.waitAt(target)
		if s := b.status(); s < 400 || s > 499 {
			t.Errorf("cross-origin POST %s: status %d, want 4xx:\n%s", target, s, b.bodyText())
		}
	}
	if ps := e.passwords(user); len(ps) != 1 || ps[0].ID != id {
		t.Fatalf("cross-origin POSTs changed the passwords: %+v", ps)
	}
	if code := e.imapLoginCode(user, pass); code != "" {
		t.Fatalf("the password stopped working after refused cross-origin POSTs: NO [%s]", code)
	}
}

// TestWebSignInRefused: a sign-in whose ID token names another mailbox
// than the one signed in is refused and links nothing; a replayed callback
// (state and code used once already) is refused with a clear page.
func TestWebSignInRefused(t *testing.T) {
	t.Parallel()
	e := newWebE2E(t)
	const victim, mallory = "victim@example.com", "mallory@example.com"

	e.idp.SetIDTokenMailbox(victim)
	b := newTab(t)
	e.signIn(b, mallory)
	if s := b.status(); s < 400 || s > 499 || strings.TrimSpace(b.bodyText()) == "" {
		t.Errorf("sign-in with an ID token naming %s: status %d, want a 4xx page:\n%s", victim, s, b.bodyText())
	}
	e.d.waitLog(t, `"msg":"web: sign-in failed"`, "another mailbox")
	for _, a := range e.accounts() {
		if a.Linked {
			t.Errorf("the refused sign-in linked %s", a.Mailbox)
		}
	}
	b.open(e.portal("/"))
	if b.has(byText("", "Sign out")) || !b.has(byText("", "Sign in")) {
		t.Errorf("signed in after a refused sign-in:\n%s", b.bodyText())
	}
	e.idp.SetIDTokenMailbox("")

	b = newTab(t)
	docs := b.watchDocuments()
	e.mustSignIn(b, mallory)
	callback, ok := docs.request("/auth/callback?")
	if !ok {
		t.Fatalf("no /auth/callback request seen: %v", docs.all())
	}
	for _, who := range []*tab{b, newTab(t)} { // the same browser, and another
		who.open(callback)
		if s := who.status(); s < 400 || s > 499 || strings.TrimSpace(who.bodyText()) == "" {
			t.Errorf("replayed callback: status %d, want a 4xx page:\n%s", s, who.bodyText())
		}
	}
	e.d.waitLog(t, `"msg":"web: sign-in failed"`, "used or expired state")
}
