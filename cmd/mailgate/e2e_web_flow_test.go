package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The user's steps through the portal, as page actions on the contract's
// texts and markup (issue 14, "Contract for automated checks").

// signIn signs mailbox in from the portal's signed-out page: "Sign in", the
// provider's form, back to the portal. It does not check the outcome.
func (e *e2e) signIn(b *tab, mailbox string) {
	b.t.Helper()
	b.open(e.portal("/"))
	b.clickText("", "Sign in")
	if u := b.url(); !strings.HasPrefix(u, e.idp.URL()) {
		b.t.Fatalf("\"Sign in\" led to %s (status %d), not to the provider %s:\n%s\ndaemon log:\n%s",
			u, b.status(), e.idp.URL(), b.bodyText(), e.logTail(10))
	}
	b.fill("mailbox", mailbox)
	b.clickText("", "Sign in to fakeidp")
}

// mustSignIn signs mailbox in and checks that the portal shows its page.
func (e *e2e) mustSignIn(b *tab, mailbox string) {
	b.t.Helper()
	e.signIn(b, mailbox)
	if u := b.url(); !strings.HasPrefix(u, e.portal("/")) {
		b.t.Fatalf("after sign-in at the provider the browser is at %s, not the portal", u)
	}
	if s := b.status(); s != http.StatusOK {
		b.t.Fatalf("portal after sign-in: status %d:\n%s\ndaemon log:\n%s", s, b.bodyText(), e.logTail(20))
	}
	body := b.bodyText()
	if !strings.Contains(body, mailbox) || !b.has(byText("", "Sign out")) {
		b.t.Fatalf("signed-in page does not name %s or lacks \"Sign out\":\n%s", mailbox, body)
	}
}

// logTail is the daemon's last n log lines, for failure messages.
func (e *e2e) logTail(n int) string {
	lines := strings.Split(e.d.logText(), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// openCreateForm goes from the user's page to the create form.
func (e *e2e) openCreateForm(b *tab) {
	b.t.Helper()
	b.open(e.portal("/"))
	b.clickText("", "Create app password")
	if !b.has(`document.querySelector('input[name="name"]')`) {
		b.t.Fatalf("no <input name=\"name\"> on the create form %s:\n%s", b.url(), b.bodyText())
	}
	if id := eval[string](b, `document.querySelector('input[name="name"]').id`); id == "" ||
		!b.has(chromedp.JSPath(fmt.Sprintf(`document.querySelector('label[for=%s]')`, jsString(id)))) {
		b.t.Errorf("the name field has no <label>")
	}
}

// submitCreate fills the create form's name and submits it with its own
// submit button; it returns the one-time password shown ("" if none).
func (e *e2e) submitCreate(b *tab, name string) string {
	b.t.Helper()
	b.fill("name", name)
	b.click("submit the create form", chromedp.JSPath(
		`document.querySelector('input[name="name"]').form.querySelector('button:not([type=button]):not([type=reset]), input[type=submit]')`))
	return strings.TrimSpace(b.text("#new-password"))
}

// createPassword creates an app password named name in the browser and
// returns it as shown and its row id on the user's page.
func (e *e2e) createPassword(b *tab, name string) (password, id string) {
	b.t.Helper()
	e.openCreateForm(b)
	password = e.submitCreate(b, name)
	if password == "" {
		b.t.Fatalf("no #new-password after creating %q:\n%s", name, b.bodyText())
	}
	return password, e.rowID(b, name)
}

// rowID opens the user's page and returns the data-password-id of the row
// holding name.
func (e *e2e) rowID(b *tab, name string) string {
	b.t.Helper()
	b.open(e.portal("/"))
	id := eval[string](b, fmt.Sprintf(`(() => { const r = [...document.querySelectorAll("tr[data-password-id]")]
		.find(r => r.innerText.includes(%s)); return r ? r.dataset.passwordId : "" })()`, jsString(name)))
	if id == "" {
		b.t.Fatalf("no <tr data-password-id> holding %q on the user's page:\n%s", name, b.bodyText())
	}
	return id
}

// rowSel is the CSS selector of a password's row.
func rowSel(id string) string { return fmt.Sprintf(`tr[data-password-id=%s]`, jsString(id)) }

// download fetches u with the browser's cookies, as the browser's download
// of a link would.
func (e *e2e) download(b *tab, u string) (status int, contentType string, body []byte) {
	b.t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range b.cookies(u) {
		req.AddCookie(c)
	}
	client := &http.Client{Timeout: stepTimeout, Transport: &http.Transport{TLSClientConfig: e.tls.Clone()}}
	resp, err := client.Do(req)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

// checkProfile checks a .mobileconfig: an IMAP and SMTP account of mailbox
// on the daemon's host and implicit-TLS ports, with SSL and the password.
func (e *e2e) checkProfile(t *testing.T, body []byte, mailbox, password string) {
	t.Helper()
	v, err := parsePlist(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the .mobileconfig is not a property list: %v\n%s", err, body)
	}
	root, _ := v.(map[string]any)
	if root["PayloadType"] != "Configuration" {
		t.Errorf("profile PayloadType %v, want Configuration", root["PayloadType"])
	}
	var mail map[string]any
	items, _ := root["PayloadContent"].([]any)
	for _, it := range items {
		if m, _ := it.(map[string]any); m["PayloadType"] == "com.apple.mail.managed" {
			mail = m
		}
	}
	if mail == nil {
		t.Fatalf("no com.apple.mail.managed payload in the profile:\n%s", body)
	}
	_, imapsPort := splitLocal(e.imaps)
	_, smtpsPort := splitLocal(e.smtps)
	want := map[string]any{
		"EmailAccountType":                 "EmailTypeIMAP",
		"EmailAddress":                     mailbox,
		"IncomingMailServerAuthentication": "EmailAuthPassword",
		"OutgoingMailServerAuthentication": "EmailAuthPassword",
		"IncomingMailServerHostName":       "localhost",
		"IncomingMailServerPortNumber":     mustAtoi(t, imapsPort),
		"IncomingMailServerUseSSL":         true,
		"IncomingMailServerUsername":       mailbox,
		"OutgoingMailServerHostName":       "localhost",
		"OutgoingMailServerPortNumber":     mustAtoi(t, smtpsPort),
		"OutgoingMailServerUseSSL":         true,
		"OutgoingMailServerUsername":       mailbox,
	}
	for k, w := range want {
		if got := mail[k]; got != w {
			t.Errorf("profile %s = %#v, want %#v", k, got, w)
		}
	}
	if got, _ := mail["IncomingPassword"].(string); groupless(got) != groupless(password) {
		t.Errorf("profile IncomingPassword = %q, want the password shown %q", got, password)
	}
	// SMTP takes the same password, given again or by reference.
	if got, _ := mail["OutgoingPassword"].(string); groupless(got) != groupless(password) &&
		mail["OutgoingPasswordSameAsIncomingPassword"] != true {
		t.Errorf("profile OutgoingPassword = %q and not OutgoingPasswordSameAsIncomingPassword, want the password shown", got)
	}
}

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("port %q: %v", s, err)
	}
	return n
}

// waitRow reloads the user's page until the row of id satisfies ok.
func (e *e2e) waitRow(b *tab, id, what string, ok func(row string) bool) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b.open(e.portal("/"))
		row := b.text(rowSel(id))
		if ok(row) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the row of password %s does not show %s after 15s: %q", id, what, row)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
