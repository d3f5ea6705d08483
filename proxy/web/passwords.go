package web

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"mailgate/proxy/admin"
)

// maxNameLen is the longest password name, in characters, as the store
// allows it.
const maxNameLen = 64

// expiries are the choices of the create form, in days; 0 is never.
var expiries = map[string]int{"never": 0, "30": 30, "90": 90, "365": 365}

// actor is who acts, for the admin log line of every change.
func actor(r *http.Request, ss *session) context.Context {
	return admin.WithActor(r.Context(), admin.Actor{Who: ss.user.Mailbox, Remote: ipString(clientIP(r))})
}

// home is "/": the sign-in page, or the user's own page.
func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	ss, _ := s.current(r)
	if ss == nil {
		s.render(w, r, http.StatusOK, "signin", message{})
		return
	}
	s.userPage(w, r, ss)
}

type userPage struct {
	User        *User
	IsAdmin     bool
	Passwords   []admin.AppPassword
	NeedsRelink bool
	Reason      string
}

func (s *Server) userPage(w http.ResponseWriter, r *http.Request, ss *session) {
	ps, err := s.admin.ListPasswords(r.Context(), admin.ListArgs{Mailbox: ss.user.Mailbox})
	if err != nil {
		s.internal(w, r, "list passwords", err)
		return
	}
	d := userPage{User: &ss.user, IsAdmin: s.isAdmin(&ss.user), Passwords: ps}
	if row, err := s.mailboxRow(r.Context(), ss.user.Mailbox); err == nil && row != nil {
		d.NeedsRelink, d.Reason = row.Link == "needs_relink", row.Reason
	} else if err != nil {
		s.log.Error("web: link state unknown", "proto", "web", "user", ss.user.Mailbox, "err", err)
	}
	s.render(w, r, http.StatusOK, "home", d)
}

// mailboxRow returns the admin row of exactly mailbox, or nil.
func (s *Server) mailboxRow(ctx context.Context, mailbox string) (*admin.MailboxRow, error) {
	res, err := s.admin.Mailboxes(ctx, admin.MailboxesArgs{Query: mailbox, Limit: 500})
	if err != nil {
		return nil, err
	}
	for i := range res.Rows {
		if res.Rows[i].Mailbox == mailbox {
			return &res.Rows[i], nil
		}
	}
	return nil, nil
}

// internal answers an unexpected failure: the log has it, the page not.
func (s *Server) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.Error("web: "+what+" failed", "proto", "web", "remote", ipString(clientIP(r)), "err", err)
	s.fail(w, r, http.StatusInternalServerError, "Something went wrong",
		"The request could not be completed. Try again later; if it keeps failing, tell your administrator.")
}

// createForm is the create form's fields, as shown and as sent.
type createForm struct {
	User             *User
	Name             string
	IMAP, SMTP, POP3 bool
	Expires          string
	Error            string
}

func (s *Server) newPasswordForm(w http.ResponseWriter, r *http.Request, ss *session) {
	if !s.mayCreate(w, r, ss) {
		return
	}
	s.render(w, r, http.StatusOK, "new", createForm{User: &ss.user, IMAP: true, SMTP: true, POP3: true, Expires: "never"})
}

// mayCreate checks that ss may create a password now: a sign-in from the
// last ten minutes, else the user signs in again and comes back to the
// form; and MFA when required. Otherwise it answers and returns false.
func (s *Server) mayCreate(w http.ResponseWriter, r *http.Request, ss *session) bool {
	now := s.now()
	if at := ss.authTime(); at.IsZero() || now.Sub(at) >= freshAuth {
		// A provider that ignores max_age would send the user round in
		// circles: after one fresh sign-in, say so instead.
		if !ss.freshAt.IsZero() && now.Sub(ss.freshAt) < time.Minute {
			s.log.Warn("web: provider did not confirm a fresh sign-in", "proto", "web", "user", ss.user.Mailbox)
			s.fail(w, r, http.StatusForbidden, "Sign-in too old",
				"Your provider did not confirm a new sign-in, so no app password can be created. Ask your administrator.")
			return false
		}
		s.startSignIn(w, r, "/passwords/new", true)
		return false
	}
	if s.o.RequireMFA && !ss.user.MFA {
		s.log.Warn("web: create refused: no mfa", "proto", "web", "user", ss.user.Mailbox, "remote", ipString(clientIP(r)))
		s.fail(w, r, http.StatusForbidden, "Multi-factor sign-in needed",
			"Creating an app password needs a sign-in with multi-factor authentication (for example a code or an authenticator app). Sign out, then sign in again using it.")
		return false
	}
	return true
}

func (s *Server) createPassword(w http.ResponseWriter, r *http.Request, ss *session) {
	if !s.mayCreate(w, r, ss) {
		return
	}
	f, a, ok := s.readCreateForm(w, r, ss)
	if !ok {
		return
	}
	res, err := s.admin.CreatePassword(actor(r, ss), a)
	if err != nil {
		s.log.Warn("web: create password failed", "proto", "web", "user", ss.user.Mailbox, "err", err)
		f.Error = "The app password could not be created. If you have many, revoke one you no longer use and try again."
		s.render(w, r, http.StatusBadRequest, "new", f)
		return
	}
	s.showCreated(w, r, ss, res)
}

// readCreateForm checks the create form: every field bounded to what the
// form offers. On a mistake it shows the form again with a message.
func (s *Server) readCreateForm(w http.ResponseWriter, r *http.Request, ss *session) (createForm, admin.CreateArgs, bool) {
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return createForm{}, admin.CreateArgs{}, false
	}
	f := createForm{User: &ss.user, Name: r.PostForm.Get("name"), Expires: r.PostForm.Get("expires")}
	a := admin.CreateArgs{Mailbox: ss.user.Mailbox, Name: strings.TrimSpace(f.Name)}
	f.readScopes(r.PostForm["scope"])
	if !f.IMAP || !f.SMTP || !f.POP3 {
		a.Scopes = r.PostForm["scope"]
	}
	days, known := expiries[f.Expires]
	if days > 0 {
		a.Expires = s.now().AddDate(0, 0, days)
	}
	switch {
	case f.Error != "":
	case a.Name == "":
		f.Error = "Enter a name, such as the app or device the password is for."
	case !utf8.ValidString(a.Name) || utf8.RuneCountInString(a.Name) > maxNameLen:
		f.Error = "The name is too long: at most 64 characters."
		f.Name = ""
	case strings.IndexFunc(a.Name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		f.Error = "The name cannot hold control characters."
	case !known:
		f.Error = "Choose when the password expires from the list."
	case s.nameTaken(r.Context(), ss.user.Mailbox, a.Name):
		f.Error = "You already have an app password with this name. Pick another name."
	}
	if f.Error != "" {
		s.render(w, r, http.StatusBadRequest, "new", f)
		return f, a, false
	}
	return f, a, true
}

// readScopes sets the access checkboxes from what the form sent. All three
// checked means every protocol: the password is created without scopes,
// which the store keeps as "all" so that it also works with protocols
// mailgate adds later. None checked is a mistake, not "all": a user who
// unticks everything must not get the widest password.
func (f *createForm) readScopes(scopes []string) {
	for _, sc := range scopes {
		switch sc {
		case "imap":
			f.IMAP = true
		case "smtp":
			f.SMTP = true
		case "pop3":
			f.POP3 = true
		default:
			f.Error = "Choose the access from the list."
		}
	}
	if len(scopes) == 0 {
		f.IMAP, f.SMTP, f.POP3 = true, true, true
		f.Error = "Choose at least one protocol the password may be used for."
	}
}

// nameTaken reports whether mailbox has a password named name (without
// case, as the store compares), so that the user gets a clear message.
func (s *Server) nameTaken(ctx context.Context, mailbox, name string) bool {
	ps, err := s.admin.ListPasswords(ctx, admin.ListArgs{Mailbox: mailbox})
	if err != nil {
		return false // CreatePassword will say
	}
	for _, p := range ps {
		if strings.EqualFold(p.Name, name) {
			return true
		}
	}
	return false
}

// created is the result page: the password, once.
type created struct {
	User             *User
	Password         admin.AppPassword
	Grouped          string // the secret in groups of four
	IMAP, SMTP, POP3 []admin.Endpoint
	Hostname         string
	ProfileURL       string
}

func (s *Server) showCreated(w http.ResponseWriter, r *http.Request, ss *session, res admin.CreateResult) {
	d := created{User: &ss.user, Password: res.AppPassword, Grouped: groupFour(res.Secret),
		IMAP: s.o.Settings.IMAP, SMTP: s.o.Settings.SMTP, POP3: s.o.Settings.POP3, Hostname: s.o.Settings.Hostname}
	if data, ok := buildProfile(s.o.Settings, res.Mailbox, res.Secret, res.Name); ok {
		if token, err := s.mem.addProfile(ss.user.Mailbox, data); err == nil {
			d.ProfileURL = "/profile/" + token
		}
	}
	d.Password.Secret = ""
	// The only page that ever holds the password: no cache may keep it.
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, http.StatusOK, "created", d)
}

// groupFour writes a secret in groups of four for reading; logins take it
// with or without the spaces.
func groupFour(secret string) string {
	var b strings.Builder
	for i, c := range secret {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (s *Server) revokePassword(w http.ResponseWriter, r *http.Request, ss *session) {
	id := r.PathValue("id")
	_, err := s.admin.RevokePassword(actor(r, ss), admin.RevokeArgs{Mailbox: ss.user.Mailbox, ID: id})
	if s.revokeFailed(w, r, err) {
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// revokeFailed answers a failed revoke. An *admin.Error is the operation
// refusing (no such password of that mailbox, a malformed id): the
// request changed nothing.
func (s *Server) revokeFailed(w http.ResponseWriter, r *http.Request, err error) bool {
	var ae *admin.Error
	switch {
	case err == nil:
		return false
	case errors.As(err, &ae):
		s.log.Warn("web: revoke refused", "proto", "web", "remote", ipString(clientIP(r)), "err", err)
		s.fail(w, r, http.StatusNotFound, "No such app password",
			"There is no such app password in this mailbox. Nothing was changed.")
	default:
		s.internal(w, r, "revoke", err)
	}
	return true
}

func (s *Server) confirmRevokeAll(w http.ResponseWriter, r *http.Request, ss *session) {
	ps, err := s.admin.ListPasswords(r.Context(), admin.ListArgs{Mailbox: ss.user.Mailbox})
	if err != nil {
		s.internal(w, r, "list passwords", err)
		return
	}
	s.render(w, r, http.StatusOK, "revoke_all", struct {
		User  *User
		Count int
	}{&ss.user, len(ps)})
}

func (s *Server) revokeAll(w http.ResponseWriter, r *http.Request, ss *session) {
	_, err := s.admin.RevokeAll(actor(r, ss), admin.RevokeAllArgs{Mailboxes: []string{ss.user.Mailbox}})
	if err != nil {
		s.internal(w, r, "revoke all", err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) downloadProfile(w http.ResponseWriter, r *http.Request, ss *session) {
	data := s.mem.takeProfile(r.PathValue("token"), ss.user.Mailbox)
	if data == nil {
		s.fail(w, r, http.StatusNotFound, "Link expired",
			"This download works once and for ten minutes. Create a new app password to get a new one.")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-apple-aspen-config")
	h.Set("Content-Disposition", `attachment; filename="mailgate.mobileconfig"`)
	h.Set("Cache-Control", "no-store")
	w.Write(data)
}
