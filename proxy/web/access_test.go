package web

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"mailgate/proxy/admin"
	"mailgate/store"
)

// TestCreateAccess: the access boxes. All three checked create an "all"
// password (listed as "All protocols"), which logs in over every protocol;
// fewer boxes create exactly those scopes; none is refused.
func TestCreateAccess(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.signIn(e.user("ann@example.com"))
	tests := []struct {
		name   string
		boxes  []string
		scopes []string
		shown  string
	}{
		{"all three", []string{"imap", "smtp", "pop3"}, []string{"all"}, "All protocols"},
		{"pop3", []string{"pop3"}, []string{"pop3"}, "POP3"},
		{"imap smtp", []string{"smtp", "imap"}, []string{"imap", "smtp"}, "IMAP, SMTP"},
	}
	for _, tc := range tests {
		res := b.post("/passwords", url.Values{"name": {tc.name}, "scope": tc.boxes, "expires": {"never"}})
		secret := secretOf(t, res)
		i := slices.IndexFunc(e.passwords("ann@example.com"), func(p admin.AppPassword) bool { return p.Name == tc.name })
		if got := e.passwords("ann@example.com")[i].Scopes; !slices.Equal(got, tc.scopes) {
			t.Errorf("%s: stored %q, want %q", tc.name, got, tc.scopes)
		}
		for _, proto := range []string{store.ScopeIMAP, store.ScopeSMTP, store.ScopePOP3} {
			_, err := e.st.Verify("ann@example.com", secret, proto, "192.0.2.1")
			if want := tc.scopes[0] == "all" || slices.Contains(tc.scopes, proto); (err == nil) != want {
				t.Errorf("%s over %s: %v, want ok=%v", tc.name, proto, err, want)
			}
		}
	}
	none := b.post("/passwords", url.Values{"name": {"none"}, "expires": {"never"}})
	mustContain(t, none, "Choose at least one protocol")
	if slices.ContainsFunc(e.passwords("ann@example.com"), func(p admin.AppPassword) bool { return p.Name == "none" }) {
		t.Error("a form with no access box created a password")
	}
	home := b.get("/")
	for _, tc := range tests {
		row := passwordRow(t, home.body, tc.name)
		if !strings.Contains(row, `<td data-label="Access">`+tc.shown+`</td>`) {
			t.Errorf("%s: row shows %s, want access %q", tc.name, row, tc.shown)
		}
	}
}

// passwordRow returns the home page's table row of the password named name.
func passwordRow(t *testing.T, body, name string) string {
	t.Helper()
	for _, row := range strings.Split(body, "<tr ") {
		if strings.Contains(row, `<td data-label="Name">`+name+`</td>`) {
			return row
		}
	}
	t.Fatalf("no row for %q", name)
	return ""
}

// TestCreateAccessKeptOnError: a refused form comes back with the boxes
// as sent, and with all of them (and a message) when none was sent.
func TestCreateAccessKeptOnError(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.signIn(e.user("ann@example.com"))
	p := b.post("/passwords", url.Values{"name": {" "}, "scope": {"pop3"}, "expires": {"never"}})
	mustContain(t, p, "Enter a name", `name="scope" value="pop3" checked`)
	if strings.Contains(p.body, `value="imap" checked`) || strings.Contains(p.body, `value="smtp" checked`) {
		t.Errorf("unsent boxes come back checked:\n%s", p.body)
	}
	p = b.post("/passwords", url.Values{"name": {" "}, "expires": {"never"}})
	mustContain(t, p, "Choose at least one protocol", `value="imap" checked`, `value="smtp" checked`, `value="pop3" checked`)
}

// TestCreatedShowsPOP3: the result page lists the POP3 ports when POP3 is on.
func TestCreatedShowsPOP3(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.signIn(e.user("ann@example.com"))
	res := b.post("/passwords", url.Values{"name": {"tickets"}, "scope": {"pop3"}, "expires": {"never"}})
	mustContain(t, res, `Incoming mail (POP3)</td><td data-label="Server">mail.example.com</td><td data-label="Port">995</td><td data-label="Security">SSL/TLS</td>`)
}
