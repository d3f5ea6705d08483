package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestWebBrowserHarness proves the browser harness on a plain local page: a
// form is filled and submitted, the redirect is followed, the text and
// status are read, and each tab has its own cookies.
func TestWebBrowserHarness(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Cookie("who")
		who := "nobody"
		if c != nil {
			who = c.Value
		}
		fmt.Fprintf(w, `<!doctype html><title>t</title><p id="who">%s</p>
<form method="post" action="/in"><label for="n">Name</label><input id="n" name="name">
<button>Sign in</button></form><a href="/missing">Lost</a>`, who)
	})
	mux.HandleFunc("POST /in", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "who", Value: r.FormValue("name"), Path: "/"})
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	srv := httptest.NewTLSServer(mux) // self-signed, like the daemon's certificate
	t.Cleanup(srv.Close)

	b := newTab(t)
	docs := b.watchDocuments()
	b.open(srv.URL)
	if got := b.text("#who"); got != "nobody" {
		t.Fatalf("first visit: %q", got)
	}
	b.fill("name", "ada")
	b.clickText("", "Sign in")
	if got := b.text("#who"); got != "ada" {
		t.Fatalf("after sign-in: %q\n%s", got, b.bodyText())
	}
	if s := b.status(); s != 200 {
		t.Fatalf("status %d", s)
	}
	b.clickText("", "Lost")
	if s := b.status(); s != 404 {
		t.Fatalf("status of a missing page: %d", s)
	}
	if _, ok := docs.request("/in"); !ok {
		t.Errorf("no document request to /in: %v", docs.all())
	}
	b.open(srv.URL)

	other := newTab(t)
	other.open(srv.URL)
	if got := other.text("#who"); got != "nobody" {
		t.Fatalf("a second tab shares cookies: %q", got)
	}
}
