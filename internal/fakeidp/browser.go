package fakeidp

import (
	"cmp"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// sessionCookie keeps a browser signed in at the provider, so that a
// second authorization request goes straight back to the client.
const sessionCookie = "fakeidp_session"

var signInPage = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in - fakeidp</title>
</head>
<body>
<main>
<h1>fakeidp</h1>
<p>The test identity provider of mailgate: any address signs in, no password.</p>
<form method="post" action="/authorize">
<input type="hidden" name="request" value="{{.Request}}">
{{if .Error}}<p role="alert">{{.Error}}</p>
{{end}}<p><label for="mailbox">Email</label>
<input id="mailbox" name="mailbox" type="email" autocomplete="username" required autofocus value="{{.Mailbox}}"></p>
<p><button type="submit">Sign in to fakeidp</button></p>
</form>
</main>
</body>
</html>
`))

// SetInteractive(true) makes the authorization endpoint behave like a
// provider in a browser: a user without a sign-in session (a cookie) gets a
// sign-in form with a mailbox field labelled "Email" and a "Sign in to
// fakeidp" button; a signed-in user goes straight back with a code, unless
// prompt=login, max_age or a login_hint naming someone else asks for the
// form again. SetInteractive(false) restores the automatic sign-in.
func (s *Server) SetInteractive(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.interactive = on
}

// EndSessions signs every browser out at the provider: the next
// authorization request shows the form.
func (s *Server) EndSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.sessions)
}

// browserSignIn answers an authorization request in interactive mode.
func (s *Server) browserSignIn(w http.ResponseWriter, r *http.Request, req *authRequest) {
	mailbox := ""
	s.mu.Lock()
	if c, err := r.Cookie(sessionCookie); err == nil {
		mailbox = s.sessions[c.Value]
	}
	t, ok := s.signIns[mailbox]
	if mailbox != "" && ok && (req.loginHint == "" || req.loginHint == mailbox) && !req.fresh(t) {
		s.mu.Unlock()
		s.redirectWithCode(w, r, req, mailbox, t)
		return
	}
	now := time.Now()
	for id, p := range s.pending { // forget forms left open
		if now.After(p.expires) {
			delete(s.pending, id)
		}
	}
	id := randToken("rq-")
	s.pending[id] = req
	prefill := cmp.Or(req.loginHint, s.loginAs, mailbox)
	s.mu.Unlock()
	showSignIn(w, http.StatusOK, id, prefill, "")
}

func showSignIn(w http.ResponseWriter, status int, request, mailbox, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	signInPage.Execute(w, struct{ Request, Mailbox, Error string }{request, mailbox, msg})
}

// handleSignInForm takes the submitted form: the user is now signed in as
// the mailbox (a fresh auth_time), gets a session cookie and goes back to
// the client with a code.
func (s *Server) handleSignInForm(w http.ResponseWriter, r *http.Request) {
	id, mailbox := r.PostFormValue("request"), canon(r.PostFormValue("mailbox"))
	s.mu.Lock()
	req := s.pending[id]
	if req == nil || time.Now().After(req.expires) {
		delete(s.pending, id)
		s.mu.Unlock()
		http.Error(w, "unknown or expired sign-in request: start again from the application", http.StatusBadRequest)
		return
	}
	if local, domain, ok := strings.Cut(mailbox, "@"); !ok || local == "" || domain == "" {
		s.mu.Unlock()
		showSignIn(w, http.StatusUnprocessableEntity, id, mailbox, "Enter an email address like user@example.com.")
		return
	}
	delete(s.pending, id)
	now, sid := time.Now(), randToken("sid-")
	s.signIns[mailbox], s.sessions[sid] = now, mailbox
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sid, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode})
	s.redirectWithCode(w, r, req, mailbox, now)
}
