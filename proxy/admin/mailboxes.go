package admin

import (
	"context"
	"strings"

	"mailgate/store"
)

// Page sizes of account.mailboxes.
const (
	defaultMailboxLimit = 50
	maxMailboxLimit     = 500
)

// MailboxesArgs are the arguments of account.mailboxes.
type MailboxesArgs struct {
	Query  string `json:"query"` // substring of the address, case-insensitive; "" all
	Offset int    `json:"offset"`
	Limit  int    `json:"limit"` // 0: 50; at most 500
}

// MailboxesResult is one page of account.mailboxes.
type MailboxesResult struct {
	Total int          `json:"total"` // matching the query, before paging
	Rows  []MailboxRow `json:"rows"`  // sorted by address
}

// MailboxRow is one mailbox of account.mailboxes.
type MailboxRow struct {
	Mailbox   string   `json:"mailbox"`
	Link      string   `json:"link"`             // "linked", "needs_relink" or "unlinked"
	Reason    string   `json:"reason,omitempty"` // why it needs re-linking, in plain words
	Passwords int      `json:"passwords"`
	LastUsed  *LastUse `json:"last_used"` // the most recent use of any of its passwords
}

// Link states of a MailboxRow.
const (
	LinkLinked      = "linked"
	LinkNeedsRelink = "needs_relink"
	LinkUnlinked    = "unlinked"
)

// Mailboxes (account.mailboxes) lists every mailbox that has app passwords
// or a link, a page at a time, for the admin's table in the portal. Last
// uses include logins not yet written to disk.
func (s *Service) Mailboxes(ctx context.Context, a MailboxesArgs) (MailboxesResult, error) {
	switch {
	case a.Offset < 0:
		return MailboxesResult{}, Usagef("account mailboxes: offset must not be negative")
	case a.Limit < 0 || a.Limit > maxMailboxLimit:
		return MailboxesResult{}, Usagef("account mailboxes: limit must be 0 to %d", maxMailboxLimit)
	case a.Limit == 0:
		a.Limit = defaultMailboxLimit
	}
	page, err := s.store.Mailboxes(store.MailboxQuery{Contains: a.Query, Offset: a.Offset, Limit: a.Limit})
	if err != nil {
		return MailboxesResult{}, storeError(err)
	}
	out := MailboxesResult{Total: page.Total, Rows: make([]MailboxRow, 0, len(page.Rows))}
	for _, m := range page.Rows {
		out.Rows = append(out.Rows, toMailboxRow(m))
	}
	return out, nil
}

func toMailboxRow(m store.MailboxSummary) MailboxRow {
	r := MailboxRow{Mailbox: m.Mailbox, Link: LinkUnlinked, Passwords: m.Passwords}
	switch {
	case m.NeedsRelink != "":
		r.Link, r.Reason = LinkNeedsRelink, relinkReason(m.NeedsRelink)
	case m.Linked:
		r.Link = LinkLinked
	}
	if m.LastUsed != nil {
		r.LastUsed = &LastUse{Time: m.LastUsed.Time, Remote: m.LastUsed.Remote, Proto: m.LastUsed.Proto}
	}
	return r
}

// relinkWords says in plain words what the provider's reason to re-link
// (proxy/oauth: "code: description") means. Microsoft's AADSTS numbers in
// the description are more precise than the code, so they come first.
var relinkWords = []struct{ match, words string }{
	{"AADSTS50173", "the password was changed or reset"},
	{"AADSTS70043", "the sign-in expired under a Conditional Access policy"},
	{"AADSTS700082", "the sign-in was not used for 90 days and expired"},
	{"AADSTS50076", "the organisation now requires multi-factor authentication"},
	{"AADSTS50079", "the organisation now requires multi-factor authentication"},
	{"invalid_grant", "the provider no longer accepts the sign-in (expired or revoked)"},
	{"interaction_required", "the provider asks the user to sign in again"},
	{"login_required", "the provider asks the user to sign in again"},
	{"consent_required", "the provider asks the user to consent again"},
}

// maxReason bounds a reason shown as the provider gave it.
const maxReason = 200

// relinkReason is the reason to re-link in plain words, with the
// provider's code for the admin who looks it up; a reason it does not
// know is shown as the provider gave it, on one line and bounded.
func relinkReason(reason string) string {
	code, _, _ := strings.Cut(reason, ":")
	for _, w := range relinkWords {
		if strings.Contains(reason, w.match) {
			if w.match == code {
				return w.words + " (" + code + ")"
			}
			return w.words + " (" + code + ", " + w.match + ")"
		}
	}
	reason = strings.Join(strings.Fields(reason), " ")
	if len(reason) > maxReason {
		reason = strings.ToValidUTF8(reason[:maxReason], "") + "..."
	}
	return reason
}
