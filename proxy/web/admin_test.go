package web

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var mailboxRowRE = regexp.MustCompile(`<tr data-mailbox="([^"]*)">\s*<td><input type="checkbox" name="mailbox" value="([^"]*)"`)

func rowsOf(t *testing.T, p page) []string {
	t.Helper()
	var out []string
	for _, m := range mailboxRowRE.FindAllStringSubmatch(p.body, -1) {
		if m[1] != m[2] {
			t.Fatalf("row %q holds checkbox %q", m[1], m[2])
		}
		out = append(out, m[1])
	}
	return out
}

func (e *env) admin() *browser {
	b := e.browser()
	b.signIn(e.user("it@example.com"))
	return b
}

func TestAdminForbidden(t *testing.T) {
	e := newEnv(t, nil)
	e.addPassword("bob@example.com", "phone")
	b := e.browser()
	b.signIn(e.user("ann@example.com"))
	if strings.Contains(b.get("/").body, `href="/admin"`) {
		t.Error("a non-admin is offered /admin")
	}
	for _, p := range []page{
		b.get("/admin"),
		b.get("/admin/mailbox/bob@example.com"),
		b.post("/admin/revoke-all", url.Values{"mailbox": {"bob@example.com"}, "confirm": {"yes"}}),
		b.post("/admin/mailbox/bob@example.com/unlink", nil),
		b.post("/admin/mailbox/bob@example.com/passwords/"+e.passwords("bob@example.com")[0].ID+"/revoke", nil),
	} {
		if p.code != 403 {
			t.Errorf("non-admin: status %d", p.code)
		}
	}
	if len(e.passwords("bob@example.com")) != 1 {
		t.Fatal("a non-admin changed another mailbox")
	}
}

func TestAdminByRole(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AdminRole = "mailgate.admin" })
	b := e.browser()
	u := e.user("boss@example.com")
	u.Roles = []string{"reader", "mailgate.admin"}
	b.signIn(u)
	if p := b.get("/admin"); p.code != 200 {
		t.Fatalf("admin by role: %d", p.code)
	}
	mustContain(t, b.get("/"), `href="/admin"`)
}

// TestAdminsFoldASCIIOnly: web.admins names mailboxes as the store does,
// ASCII letters folded and nothing else. An admin listed with the Kelvin
// sign (U+212A) is that mailbox only: Unicode lower-casing would turn it
// into "kim@example.com", another mailbox, and make its owner an admin.
func TestAdminsFoldASCIIOnly(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Admins = []string{"\u212Aim@Example.COM"} })
	kim := e.browser()
	kim.signIn(e.user("kim@example.com"))
	if p := kim.get("/admin"); p.code != 403 {
		t.Fatalf("kim@example.com on /admin: %d, want 403", p.code)
	}
	kelvin := e.browser()
	kelvin.signIn(e.user("\u212Aim@example.com"))
	if p := kelvin.get("/admin"); p.code != 200 {
		t.Fatalf("the listed admin on /admin: %d, want 200", p.code)
	}
}

// TestAdminRevokeAllSelected: an admin selects two mailboxes and deletes
// all their passwords after the confirmation; a third keeps its own.
func TestAdminRevokeAllSelected(t *testing.T) {
	e := newEnv(t, nil)
	for _, m := range []string{"ann", "bob", "cat"} {
		e.addPassword(m+"@example.com", "phone")
		e.addPassword(m+"@example.com", "laptop")
	}
	b := e.admin()
	list := b.get("/admin")
	if got := strings.Join(rowsOf(t, list), " "); got != "ann@example.com bob@example.com cat@example.com" {
		t.Fatalf("rows: %s", got)
	}
	mustContain(t, list, "Delete all app passwords of selected users")

	sel := url.Values{"mailbox": {"ann@example.com", "cat@example.com"}}
	confirm := b.post("/admin/revoke-all", sel)
	mustContain(t, confirm, "<li>ann@example.com", "<li>cat@example.com", `<input type="hidden" name="confirm" value="yes">`, ">Confirm</button>")
	if strings.Contains(confirm.body, "bob@example.com") {
		t.Fatal("confirmation lists an unselected mailbox")
	}
	if len(e.passwords("ann@example.com")) != 2 {
		t.Fatal("the confirmation page deleted")
	}
	sel.Set("confirm", "yes")
	done := b.post("/admin/revoke-all", sel)
	mustContain(t, done, "Deleted 4 app passwords of 2 mailboxes")
	if len(e.passwords("ann@example.com")) != 0 || len(e.passwords("cat@example.com")) != 0 || len(e.passwords("bob@example.com")) != 2 {
		t.Fatal("wrong mailboxes revoked")
	}
	if !strings.Contains(e.logs.String(), "by=it@example.com") {
		t.Errorf("the admin is not named in the log:\n%s", e.logs)
	}
	if p := b.post("/admin/revoke-all", url.Values{}); p.code != 400 {
		t.Errorf("nothing selected: %d", p.code)
	}
}

func TestAdminSearchAndPaging(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 120 {
		e.addPassword(fmt.Sprintf("user%03d@example.com", i), "phone")
	}
	b := e.admin()
	p1 := b.get("/admin")
	if rows := rowsOf(t, p1); len(rows) != 50 || rows[0] != "user000@example.com" {
		t.Fatalf("page 1: %d rows, first %v", len(rows), rows[:1])
	}
	mustContain(t, p1, "120 mailboxes", "page 1 of 3", `href="/admin?page=2"`)
	p3 := b.get("/admin?page=3")
	if rows := rowsOf(t, p3); len(rows) != 20 || rows[0] != "user100@example.com" {
		t.Fatalf("page 3: %d rows", len(rows))
	}
	mustContain(t, p3, `href="/admin?page=2"`)
	q := b.get("/admin?q=USER01")
	if rows := rowsOf(t, q); len(rows) != 10 || rows[0] != "user010@example.com" {
		t.Fatalf("search: %v", rows)
	}
	mustContain(t, q, "10 mailboxes matching")
	for _, bad := range []string{"/admin?page=-1", "/admin?page=x", "/admin?page=99999999999"} {
		if p := b.get(bad); p.code != 200 {
			t.Errorf("%s: %d", bad, p.code)
		}
	}
	if rows := rowsOf(t, b.get("/admin?page=9")); len(rows) != 0 {
		t.Fatalf("past the end: %v", rows)
	}
	if p := b.get("/admin?q=" + url.QueryEscape(`"><script>`)); strings.Contains(p.body, `"><script>`) {
		t.Fatal("query not escaped")
	}
}

func TestAdminMailboxPage(t *testing.T) {
	e := newEnv(t, nil)
	p1 := e.addPassword("bob@example.com", "phone")
	p2 := e.addPassword("bob@example.com", "laptop")
	if err := e.st.SaveRefreshToken("microsoft", "bob@example.com", "rt"); err != nil {
		t.Fatal(err)
	}
	b := e.admin()
	mustContain(t, b.get("/admin"), `href="/admin/mailbox/bob@example.com"`)
	page := b.get("/admin/mailbox/bob@example.com")
	mustContain(t, page, "Link: linked", `<tr data-password-id="`+p1.ID+`">`, `<tr data-password-id="`+p2.ID+`">`,
		`action="/admin/mailbox/bob@example.com/passwords/`+p1.ID+`/revoke"`, ">Unlink</button>")

	if p := b.post("/admin/mailbox/bob@example.com/passwords/"+p1.ID+"/revoke", nil); p.code != 303 ||
		p.header.Get("Location") != "/admin/mailbox/bob@example.com" {
		t.Fatalf("revoke: %d %q", p.code, p.header.Get("Location"))
	}
	if ps := e.passwords("bob@example.com"); len(ps) != 1 || ps[0].ID != p2.ID {
		t.Fatalf("after revoke: %+v", ps)
	}
	if p := b.post("/admin/mailbox/ann@example.com/passwords/"+p2.ID+"/revoke", nil); p.code != 404 {
		t.Fatalf("id of another mailbox: %d", p.code)
	}
	un := b.post("/admin/mailbox/bob@example.com/unlink", nil)
	mustContain(t, un, "bob@example.com is unlinked", "1 app passwords are kept")
	mustContain(t, b.get("/admin/mailbox/bob@example.com"), "Link: not linked")
	if p := b.post("/admin/mailbox/bob@example.com/unlink", nil); p.code != 404 {
		t.Fatalf("unlink twice: %d", p.code)
	}
	if p := b.get("/admin/mailbox/nobody@example.com"); p.code != 404 {
		t.Fatalf("unknown mailbox: %d", p.code)
	}
}

// TestAdminOddAddress: an address with characters that mean something in
// a URL still reaches its own page.
func TestAdminOddAddress(t *testing.T) {
	e := newEnv(t, nil)
	odd := "a/b?c#d@example.com"
	e.addPassword(odd, "phone")
	b := e.admin()
	mustContain(t, b.get("/admin"), `href="/admin/mailbox/a%2Fb%3Fc%23d@example.com"`)
	p := b.get("/admin/mailbox/" + url.PathEscape(odd))
	if p.code != 200 {
		t.Fatalf("odd address: %d", p.code)
	}
	mustContain(t, p, "<h1>"+"a/b?c#d@example.com"+"</h1>")
}
