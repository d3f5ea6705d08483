package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"mailgate/proxy/admin"
)

// Bounds of /admin's inputs.
const (
	pageSize       = 50
	maxQuery       = 320 // a mailbox address at most
	maxPage        = 1_000_000
	maxSelected    = 500 // what one RevokeAll may name, as Mailboxes' largest page
	maxAddressSize = 320
)

type adminPage struct {
	User        *User
	Q           string
	Rows        []admin.MailboxRow
	Total       int
	Page, Pages int
	Prev, Next  string // links, "" none
}

func (s *Server) adminPage(w http.ResponseWriter, r *http.Request, ss *session) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > maxQuery {
		q = q[:maxQuery]
	}
	page, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || page < 1 || page > maxPage {
		page = 1
	}
	res, err := s.admin.Mailboxes(r.Context(), admin.MailboxesArgs{Query: q, Offset: (page - 1) * pageSize, Limit: pageSize})
	if err != nil {
		s.internal(w, r, "list mailboxes", err)
		return
	}
	d := adminPage{User: &ss.user, Q: q, Rows: res.Rows, Total: res.Total, Page: page,
		Pages: max(1, (res.Total+pageSize-1)/pageSize)}
	if page > 1 {
		d.Prev = adminURL(q, page-1)
	}
	if page < d.Pages {
		d.Next = adminURL(q, page+1)
	}
	s.render(w, r, http.StatusOK, "admin", d)
}

func adminURL(q string, page int) string {
	v := url.Values{}
	if q != "" {
		v.Set("q", q)
	}
	v.Set("page", strconv.Itoa(page))
	return "/admin?" + v.Encode()
}

// adminRevokeAll deletes every app password of the selected mailboxes:
// first a confirmation page that changes nothing, then, with its
// "Confirm", the same operation as "mailgate password revoke-all".
func (s *Server) adminRevokeAll(w http.ResponseWriter, r *http.Request, ss *session) {
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	boxes, problem := selected(r.PostForm["mailbox"])
	if problem != "" {
		s.render(w, r, http.StatusBadRequest, "message", message{User: &ss.user, Title: "Select mailboxes",
			Text: problem, Back: "/admin"})
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		s.render(w, r, http.StatusOK, "admin_confirm", struct {
			User      *User
			Mailboxes []string
		}{&ss.user, boxes})
		return
	}
	res, err := s.admin.RevokeAll(actor(r, ss), admin.RevokeAllArgs{Mailboxes: boxes})
	if err != nil {
		s.internal(w, r, "revoke all", err)
		return
	}
	s.render(w, r, http.StatusOK, "message", message{User: &ss.user, Title: "App passwords deleted",
		Text: fmt.Sprintf("Deleted %d app passwords of %d mailboxes; %d live sessions ended.",
			len(res.Revoked), len(boxes), res.Sessions), Back: "/admin"})
}

// selected checks the selected addresses: at least one, at most a page's
// worth, each of an address's length; duplicates dropped. problem is
// what to tell the admin otherwise.
func selected(in []string) (out []string, problem string) {
	for _, m := range in {
		m = strings.TrimSpace(m)
		if m == "" || len(m) > maxAddressSize {
			return nil, "A selected address is not valid. Go back and select again."
		}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	switch {
	case len(out) == 0:
		return nil, "Select at least one mailbox, then try again."
	case len(out) > maxSelected:
		return nil, fmt.Sprintf("Select at most %d mailboxes at a time.", maxSelected)
	}
	return out, ""
}

type adminMailbox struct {
	User      *User
	Mailbox   string
	Row       admin.MailboxRow
	Passwords []admin.AppPassword
}

func (s *Server) adminMailbox(w http.ResponseWriter, r *http.Request, ss *session) {
	addr := r.PathValue("addr")
	ps, err := s.admin.ListPasswords(r.Context(), admin.ListArgs{Mailbox: addr})
	var ae *admin.Error
	if errors.As(err, &ae) {
		s.fail(w, r, http.StatusNotFound, "No such mailbox", "There is no such mailbox.")
		return
	} else if err != nil {
		s.internal(w, r, "list passwords", err)
		return
	}
	row, err := s.mailboxRow(r.Context(), addr)
	if err != nil {
		s.internal(w, r, "list mailboxes", err)
		return
	}
	if row == nil {
		s.fail(w, r, http.StatusNotFound, "No such mailbox", "This mailbox has no app passwords and no link.")
		return
	}
	s.render(w, r, http.StatusOK, "admin_mailbox", adminMailbox{User: &ss.user, Mailbox: row.Mailbox, Row: *row, Passwords: ps})
}

func (s *Server) adminRevoke(w http.ResponseWriter, r *http.Request, ss *session) {
	addr := r.PathValue("addr")
	_, err := s.admin.RevokePassword(actor(r, ss), admin.RevokeArgs{Mailbox: addr, ID: r.PathValue("id")})
	if s.revokeFailed(w, r, err) {
		return
	}
	http.Redirect(w, r, "/admin/mailbox/"+url.PathEscape(addr), http.StatusSeeOther)
}

func (s *Server) adminUnlink(w http.ResponseWriter, r *http.Request, ss *session) {
	addr := r.PathValue("addr")
	res, err := s.admin.Unlink(actor(r, ss), admin.UnlinkArgs{Mailbox: addr})
	var ae *admin.Error
	if errors.As(err, &ae) {
		s.fail(w, r, http.StatusNotFound, "Not linked", "This mailbox is not linked. Nothing was changed.")
		return
	} else if err != nil {
		s.internal(w, r, "unlink", err)
		return
	}
	s.render(w, r, http.StatusOK, "message", message{User: &ss.user, Title: "Mailbox unlinked",
		Text: fmt.Sprintf("%s is unlinked; %d live sessions ended. Its %d app passwords are kept but do not work until it signs in to this portal again.",
			res.Mailbox, res.Sessions, res.Passwords), Back: "/admin/mailbox/" + url.PathEscape(addr)})
}
