package web

import (
	"errors"
	"html"
	"html/template"
	"net/http"
	"net/netip"
	"net/url"
	"slices"

	"golang.org/x/oauth2"

	"mailgate/proxy"
)

// Cookie names. The __Host- prefix makes browsers refuse them unless
// Secure, Path=/ and without Domain, so no other host can plant one.
const (
	sessionCookie = "__Host-mailgate"
	stateCookie   = "__Host-mailgate-signin" // binds a sign-in to the browser that started it
)

// setCookie sets a cookie with the attributes every portal cookie has.
// SameSite=Lax, not Strict: the browser comes back from the provider on a
// cross-site navigation, which must carry the state cookie.
func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// current returns the request's live session and its id, or nil.
func (s *Server) current(r *http.Request) (*session, string) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, ""
	}
	ss := s.mem.session(c.Value)
	if ss == nil {
		return nil, ""
	}
	loggedIn(r)
	return ss, c.Value
}

func (s *Server) currentUser(r *http.Request) *User {
	if ss, _ := s.current(r); ss != nil {
		return &ss.user
	}
	return nil
}

// sessionHandler is a handler for signed-in users.
type sessionHandler func(w http.ResponseWriter, r *http.Request, ss *session)

// user runs h for a signed-in user. Without a session a page is sent
// back home to sign in, and a form gets a page saying so: nothing changes.
func (s *Server) user(h sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss, _ := s.current(r)
		if ss == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/", http.StatusSeeOther)
				return
			}
			s.render(w, r, http.StatusForbidden, "message", message{Title: "Signed out",
				Text: "Your session has ended, so nothing was changed. Sign in again.", Back: "/", SignIn: true})
			return
		}
		h(w, r, ss)
	}
}

// adminOnly runs h for users allowed on /admin; others get 403.
func (s *Server) adminOnly(h sessionHandler) http.HandlerFunc {
	return s.user(func(w http.ResponseWriter, r *http.Request, ss *session) {
		if !s.isAdmin(&ss.user) {
			s.log.Warn("web: admin page refused: not an admin", "proto", "web", "user", ss.user.Mailbox,
				"remote", ipString(clientIP(r)), "path", r.URL.Path)
			s.fail(w, r, http.StatusForbidden, "Not allowed", "Only administrators can open this page.")
			return
		}
		h(w, r, ss)
	})
}

func (s *Server) isAdmin(u *User) bool {
	return slices.Contains(s.o.Admins, u.Mailbox) || (s.o.AdminRole != "" && slices.Contains(u.Roles, s.o.AdminRole))
}

// throttleKey is what the sign-in counts against in the throttle: the
// client's network, never a mailbox, since a failed sign-in names none
// and a made-up key must not lock a real mailbox out.
func throttleKey(ip netip.Addr) string { return "web " + proxy.Network(ip).String() }

// ipv6Site is the /48 of an IPv6 client, "" for IPv4: what
// maxPendingPerIPv6Site counts under.
func ipv6Site(ip netip.Addr) string {
	if ip = ip.Unmap(); !ip.Is6() {
		return ""
	}
	p, _ := ip.Prefix(48)
	return p.String()
}

func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	s.startSignIn(w, r, "/", false)
}

// startSignIn sends the browser to the provider, to come back to
// returnTo. A GET is redirected, and so is a form from a page whose
// policy named the provider ("direct"). Another form is answered with a
// page that moves on by itself (meta refresh, with a link as well):
// browsers apply the form's form-action policy to the redirects that
// follow it (see providerOrigin).
func (s *Server) startSignIn(w http.ResponseWriter, r *http.Request, returnTo string, fresh bool) {
	ip := clientIP(r)
	if s.o.Throttle.Check(ip, throttleKey(ip)) != nil {
		s.log.Warn("web: sign-in refused: throttled", "proto", "web", "remote", ipString(ip))
		s.fail(w, r, http.StatusTooManyRequests, "Too many attempts",
			"There were too many failed sign-ins from your network. Wait a quarter of an hour and try again.")
		return
	}
	p := &pending{nonce: newToken(), verifier: oauth2.GenerateVerifier(), returnTo: returnTo,
		fresh: fresh, network: proxy.Network(ip).String(), site: ipv6Site(ip)}
	state, err := s.mem.addPending(p)
	if err != nil {
		s.log.Warn("web: sign-in refused: too many in progress", "proto", "web", "remote", ipString(ip))
		s.fail(w, r, http.StatusTooManyRequests, "Too many attempts",
			"Too many sign-ins are in progress. Try again in a few minutes.")
		return
	}
	to, err := s.o.SignIn.AuthURL(r.Context(), state, p.nonce, p.verifier, fresh)
	if err == nil {
		err = checkRedirect(to)
	}
	if err != nil {
		s.mem.takePending(state)
		s.log.Error("web: sign-in cannot start", "proto", "web", "remote", ipString(ip), "err", err)
		s.fail(w, r, http.StatusServiceUnavailable, "Sign-in unavailable",
			"The sign-in service cannot be reached right now. Try again in a few minutes.")
		return
	}
	setCookie(w, stateCookie, state, int(pendingTTL.Seconds()))
	before := s.idp.get()
	if r.Method == http.MethodGet || (r.PostFormValue("direct") == "1" && s.idp.learn(to) == before) {
		http.Redirect(w, r, to, http.StatusSeeOther)
		return
	}
	s.idp.learn(to)
	refresh := template.HTMLAttr(`content="0; url=` + html.EscapeString(to) + `"`)
	s.render(w, r, http.StatusOK, "redirect", struct {
		User    *User
		URL     string
		Refresh template.HTMLAttr
	}{nil, to, refresh})
}

// checkRedirect refuses an authorization URL that is not http(s), so that
// nothing but a web page can be put in the page's refresh.
func checkRedirect(to string) error {
	u, err := url.Parse(to)
	if err != nil {
		return err
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return errors.New("authorization url is not http(s)")
	}
	return nil
}

// callback is where the provider sends the browser back. Every way it can
// go wrong gets a page with a fixed text and a log line, and counts
// against the throttle like a failed login.
func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	ip := clientIP(r)
	if s.o.Throttle.Check(ip, throttleKey(ip)) != nil {
		s.log.Warn("web: sign-in refused: throttled", "proto", "web", "remote", ipString(ip))
		s.fail(w, r, http.StatusTooManyRequests, "Too many attempts",
			"There were too many failed sign-ins from your network. Wait a quarter of an hour and try again.")
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	p := s.mem.takePending(state)
	setCookie(w, stateCookie, "", -1)
	switch c, err := r.Cookie(stateCookie); {
	case p == nil:
		s.signInFailed(w, r, "unknown, used or expired state", nil)
		return
	case err != nil || c.Value != state:
		s.signInFailed(w, r, "state not started in this browser", nil)
		return
	case q.Get("error") != "":
		s.signInFailed(w, r, "provider error "+proxy.LogSafe(q.Get("error")), nil)
		return
	case q.Get("code") == "":
		s.signInFailed(w, r, "no code", nil)
		return
	}
	u, err := s.o.SignIn.Finish(r.Context(), q.Get("code"), p.verifier, p.nonce)
	if err == nil && u.Mailbox == "" {
		err = errors.New("no mailbox")
	}
	if err != nil {
		s.signInFailed(w, r, "sign-in not finished", err)
		return
	}
	s.startSession(w, r, u, p)
}

// startSession signs u in under a new session id and sends the browser on.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, u *User, p *pending) {
	ip := clientIP(r)
	if _, old := s.current(r); old != "" {
		s.mem.endSession(old)
	}
	id, err := s.mem.newSession(*u, p.fresh)
	if err != nil {
		s.log.Error("web: sign-in refused: too many sessions", "proto", "web", "user", u.Mailbox, "remote", ipString(ip))
		s.fail(w, r, http.StatusServiceUnavailable, "Sign-in unavailable", "Too many people are signed in. Try again later.")
		return
	}
	setCookie(w, sessionCookie, id, int(sessionAbsolute.Seconds()))
	loggedIn(r)
	s.log.Info("web: signed in", "proto", "web", "user", u.Mailbox, "remote", ipString(ip), "mfa", u.MFA, "fresh", p.fresh)
	http.Redirect(w, r, p.returnTo, http.StatusSeeOther)
}

// signInFailed answers a sign-in that cannot finish. The reason goes to
// the log, the page says the same few words whatever happened, and the
// failure is delayed and counted like a failed login.
func (s *Server) signInFailed(w http.ResponseWriter, r *http.Request, reason string, err error) {
	ip := clientIP(r)
	d := s.o.Throttle.Failure(ip, throttleKey(ip))
	attrs := []any{"proto", "web", "remote", ipString(ip), "reason", reason}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	s.log.Warn("web: sign-in failed", attrs...)
	proxy.Sleep(r.Context(), d)
	if errors.Is(err, ErrMailboxRefused) {
		s.render(w, r, http.StatusForbidden, "message", message{Title: "Mailbox not served here",
			Text: "This mail gateway does not serve your mailbox's domain. Nothing was stored. Ask your administrator.", Back: "/"})
		return
	}
	s.render(w, r, http.StatusBadRequest, "message", message{Title: "Sign-in failed",
		Text: "The sign-in could not be completed: it took too long, was already used, or was refused. Start again.",
		Back: "/", SignIn: true})
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	if ss, id := s.current(r); ss != nil {
		s.mem.endSession(id)
		s.log.Info("web: signed out", "proto", "web", "user", ss.user.Mailbox, "remote", ipString(clientIP(r)))
	}
	setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
