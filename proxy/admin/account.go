package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"mailgate/proxy/oauth"
	"mailgate/store"
)

// LinkArgs are the arguments of account.link.
type LinkArgs struct {
	Mailbox string `json:"mailbox"`
}

// DeviceCodeEvent is the event of a device-flow link, and the first line
// "account link -json" prints: the contract is verification_uri,
// user_code, expires_in.
type DeviceCodeEvent struct {
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete,omitempty"`
	UserCode                string `json:"user_code"`
	ExpiresIn               int    `json:"expires_in"` // seconds
}

// AuthorizeEvent asks the admin to open a URL, sign in and answer with
// the address the browser was redirected to.
type AuthorizeEvent struct {
	AuthorizeURL string `json:"authorize_url"`
}

// LinkResult is the outcome of account.link.
type LinkResult struct {
	Mailbox string `json:"mailbox"`
	Linked  bool   `json:"linked"`
}

// Link (account.link) signs a mailbox in at the provider and keeps its
// refresh token. It sends a DeviceCodeEvent and waits for the sign-in, or
// sends an AuthorizeEvent and reads the redirected address from c.
func (s *Service) Link(ctx context.Context, a LinkArgs, c Conv) (LinkResult, error) {
	if err := s.needOAuth(); err != nil {
		return LinkResult{}, err
	}
	if s.link == LinkNone {
		return LinkResult{}, WithHint(errors.New("oauth.flow is app: mailboxes use the organisation's grant and need no link"),
			`issue app passwords directly with "mailgate password create"`)
	}
	if err := s.domainAllowed(a.Mailbox); err != nil {
		return LinkResult{}, err
	}
	var err error
	if s.link == LinkAuthCode {
		err = s.linkAuthCode(ctx, a.Mailbox, c)
	} else {
		err = s.linkDevice(ctx, a.Mailbox, c)
	}
	if errors.Is(err, oauth.ErrWrongMailbox) {
		return LinkResult{}, WithHint(err, "sign in as "+a.Mailbox+" at the provider, not as another user")
	}
	if err != nil {
		return LinkResult{}, err
	}
	s.logFor(ctx).Info("mailbox linked", "user", a.Mailbox)
	return LinkResult{Mailbox: a.Mailbox, Linked: true}, nil
}

func (s *Service) linkDevice(ctx context.Context, mailbox string, c Conv) error {
	dc, err := s.oauth.StartDeviceLink(ctx, mailbox)
	if err != nil {
		return err
	}
	ev := DeviceCodeEvent{VerificationURI: dc.VerificationURI, VerificationURIComplete: dc.VerificationURIComplete,
		UserCode: dc.UserCode, ExpiresIn: dc.ExpiresIn}
	if err := c.Event(ev); err != nil {
		return err
	}
	return s.oauth.FinishDeviceLink(ctx, mailbox, dc)
}

func (s *Service) linkAuthCode(ctx context.Context, mailbox string, c Conv) error {
	l, err := s.oauth.StartAuthCodeLink(mailbox)
	if err != nil {
		return err
	}
	if err := c.Event(AuthorizeEvent{AuthorizeURL: l.URL}); err != nil {
		return err
	}
	redirected, err := c.Read()
	if err != nil {
		return err
	}
	return s.oauth.FinishAuthCodeLink(ctx, mailbox, l, redirected)
}

// ListAccountsArgs are the arguments of account.list: none.
type ListAccountsArgs struct{}

// Account is one row of account.list.
type Account struct {
	Mailbox     string     `json:"mailbox"`
	Linked      bool       `json:"linked"`
	LinkedAt    *time.Time `json:"linked_at"`
	LastRefresh *time.Time `json:"last_refresh"`
	NeedsRelink bool       `json:"needs_relink"`
	Reason      string     `json:"reason,omitempty"` // the provider's reason to re-link
	Passwords   int        `json:"passwords"`
	State       string     `json:"state"` // LinkLinked, LinkNeedsRelink or LinkUnlinked, as account.mailboxes
}

// ListAccounts (account.list) lists the mailboxes that have app passwords
// or a link, and the state of the link.
func (s *Service) ListAccounts(ctx context.Context, _ ListAccountsArgs) ([]Account, error) {
	accts, err := s.store.Accounts()
	if err != nil {
		return nil, storeError(err)
	}
	out := make([]Account, 0, len(accts))
	for _, a := range accts {
		out = append(out, toAccount(a))
	}
	return out, nil
}

func toAccount(a store.Account) Account {
	j := Account{Mailbox: a.Mailbox, State: LinkUnlinked, Linked: !a.Linked.IsZero(), Passwords: a.Passwords,
		NeedsRelink: a.NeedsRelink != "", Reason: a.NeedsRelink}
	switch {
	case j.NeedsRelink:
		j.State = LinkNeedsRelink
	case j.Linked:
		j.State = LinkLinked
	}
	if !a.Linked.IsZero() {
		j.LinkedAt = &a.Linked
	}
	if !a.LastRefresh.IsZero() {
		j.LastRefresh = &a.LastRefresh
	}
	return j
}

// RelinkWords is a provider's reason to re-link (Account.Reason) in the
// plain words that account.mailboxes and the portal's /admin page show.
func RelinkWords(reason string) string { return relinkReason(reason) }

// UnlinkArgs are the arguments of account.unlink.
type UnlinkArgs struct {
	Mailbox string `json:"mailbox"`
}

// UnlinkResult says what unlinking left: the app passwords are kept, the
// live sessions are closed.
type UnlinkResult struct {
	Mailbox   string `json:"mailbox"`
	Passwords int    `json:"passwords_kept"`
	Sessions  int    `json:"sessions_closed"`
}

// Unlink (account.unlink) deletes the mailbox's refresh token and cached
// access tokens, then ends its live sessions. Its app passwords stay but
// fail to log in until the mailbox is linked again.
func (s *Service) Unlink(ctx context.Context, a UnlinkArgs) (UnlinkResult, error) {
	unlock, err := s.lockRefresh(ctx, a.Mailbox)
	if err != nil {
		return UnlinkResult{}, storeError(err)
	}
	defer unlock()
	if err := s.store.Unlink(a.Mailbox); errors.Is(err, store.ErrNotFound) {
		return UnlinkResult{}, WithHint(fmt.Errorf("%s is not linked", a.Mailbox),
			`see linked mailboxes with "mailgate account list"`)
	} else if err != nil {
		return UnlinkResult{}, storeError(err)
	}
	// The cached access token would open the mailbox for up to an hour.
	if s.oauth != nil {
		s.oauth.Forget(a.Mailbox)
	}
	ps, err := s.store.ListPasswords(a.Mailbox)
	if err != nil {
		return UnlinkResult{}, storeError(err)
	}
	// Live sessions hold upstream connections opened with the old grant:
	// end them, so unlinking stops access now and not at token expiry.
	n := s.closeMailbox(a.Mailbox)
	s.logFor(ctx).Info("mailbox unlinked", "user", a.Mailbox, "sessions_closed", n)
	if m, err := store.CanonicalMailbox(a.Mailbox); err == nil && s.onLink != nil {
		s.onLink(m, LinkUnlinked, "unlinked by an admin")
	}
	return UnlinkResult{Mailbox: a.Mailbox, Passwords: len(ps), Sessions: n}, nil
}

// lockRefresh holds the mailbox's refresh lock (all instances') while an
// unlink runs: a refresh that read the grant before the unlink would
// otherwise save its rotated token after it and link the mailbox again
// behind the admin's back. The unlink waits for such a refresh (at most
// its 30 s flight), and one that starts after it finds no grant. Without
// OAuth, or for what is not a mailbox, there is nothing to wait for.
func (s *Service) lockRefresh(ctx context.Context, mailbox string) (func(), error) {
	m, err := store.CanonicalMailbox(mailbox)
	if s.oauth == nil || err != nil {
		return func() {}, nil
	}
	return s.store.LockRefresh(ctx, s.oauth.ProviderName(), m)
}
