package web

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"mailgate/proxy/admin"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages holds every page's template, each the layout with its content,
// parsed once at New (after miniflux's internal/template).
type pages struct {
	t map[string]*template.Template
}

var funcs = template.FuncMap{
	"date":         formatDate,
	"access":       formatAccess,
	"accessPhrase": accessPhrase,
	"pathEscape":   url.PathEscape,
	"queryEscape":  url.QueryEscape,
	"linkState":    linkState,
	"lastUse":      lastUse,
	"passwordTable": func(caption, revokeBase string, ps []admin.AppPassword) passwordTable {
		return passwordTable{Caption: caption, RevokeBase: revokeBase, Passwords: ps}
	},
}

// passwordTable is what the "passwords" template (layout.html) shows: the
// user's page and the admin's mailbox page list app passwords alike and
// differ only in the caption and where Revoke posts (RevokeBase + ID +
// "/revoke", the ID path-escaped there, the base by the caller).
type passwordTable struct {
	Caption    string
	RevokeBase string
	Passwords  []admin.AppPassword
}

// parsePages parses every page with funcs and the server's own (more).
func parsePages(more template.FuncMap) (*pages, error) {
	layout, err := template.New("layout.html").Funcs(funcs).Funcs(more).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{t: map[string]*template.Template{}}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, err
		}
		p.t[name] = t
	}
	return p, nil
}

var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// render writes page with data and status. The page is executed into a
// buffer first, so a template error is a clean 500, never half a page.
//
// No page may be stored: a signed-in user's pages list their app
// passwords and where they were used from, an admin's every mailbox, and
// a stored copy would be shown by Back to the next person at a shared
// computer after "Sign out".
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	b := bufs.Get().(*bytes.Buffer)
	b.Reset()
	defer bufs.Put(b)
	if err := s.pages.t[page].ExecuteTemplate(b, "layout.html", data); err != nil {
		s.log.Error("web: render failed", "proto", "web", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// message is the data of the message page: errors and short notices.
type message struct {
	User   *User
	Title  string
	Text   string
	Back   string // a link back, "" none
	SignIn bool   // offer the "Sign in" button
}

// fail answers with the message page: a fixed text for the user; what
// went wrong is in the log, never on the page.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, title, text string) {
	u := s.currentUser(r)
	s.render(w, r, status, "message", message{User: u, Title: title, Text: text, Back: "/", SignIn: u == nil})
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.fail(w, r, http.StatusNotFound, "Not found", "There is no such page.")
}

func (s *Server) crossOrigin(w http.ResponseWriter, r *http.Request) {
	s.log.Warn("web: cross-origin request refused", "proto", "web", "remote", ipString(clientIP(r)), "path", r.URL.Path)
	s.render(w, r, http.StatusForbidden, "message", message{Title: "Request refused",
		Text: "This form was sent from another site, so nothing was changed. Open the portal and try again.", Back: "/"})
}

func staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

func formatDate(t any) string {
	switch v := t.(type) {
	case time.Time:
		if v.IsZero() {
			return ""
		}
		return v.UTC().Format("2006-01-02 15:04 UTC")
	case *time.Time:
		if v == nil {
			return "never"
		}
		return v.UTC().Format("2006-01-02 15:04 UTC")
	}
	return ""
}

// formatAccess names the scopes as users know them: "IMAP, SMTP", and
// "All protocols" for "all".
func formatAccess(scopes []string) string {
	if slices.Contains(scopes, "all") {
		return "All protocols"
	}
	out := make([]string, len(scopes))
	for i, sc := range scopes {
		out[i] = strings.ToUpper(sc)
	}
	return strings.Join(out, ", ")
}

// accessPhrase is formatAccess inside a sentence: "all protocols".
func accessPhrase(scopes []string) string {
	if slices.Contains(scopes, "all") {
		return "all protocols"
	}
	return formatAccess(scopes)
}

// linkState says a MailboxRow's link state in plain words.
func linkState(link string) string {
	switch link {
	case "linked":
		return "linked"
	case "needs_relink":
		return "needs re-link"
	}
	return "not linked"
}

// lastUse is a password's or mailbox's last use in words.
func lastUse(u *admin.LastUse) string {
	if u == nil {
		return "never used"
	}
	out := formatDate(u.Time)
	if u.Remote != "" {
		out += " from " + u.Remote
	}
	if u.Proto != "" {
		out += " over " + strings.ToUpper(u.Proto)
	}
	return out
}
