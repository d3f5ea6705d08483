package main

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"mailgate/proxy"
	"mailgate/proxy/oauth"
	"mailgate/store"
)

// deviceEvent is the first line "account link -json" prints: the contract
// is verification_uri, user_code, expires_in.
type deviceEvent struct {
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete,omitempty"`
	UserCode                string `json:"user_code"`
	ExpiresIn               int    `json:"expires_in"`
}

// authorizeEvent asks the admin to open a URL and paste back where the
// browser was redirected to (Google: the device flow cannot carry the Gmail
// scope).
type authorizeEvent struct {
	AuthorizeURL string `json:"authorize_url"`
}

// linkResult is the last line of "account link".
type linkResult struct {
	Mailbox string `json:"mailbox"`
	Linked  bool   `json:"linked"`
}

func opAccountLink(ctx context.Context, s *service, args json.RawMessage, c conv) (any, error) {
	var a struct {
		Mailbox string `json:"mailbox"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := s.needOAuth(); err != nil {
		return nil, err
	}
	if flow(s.cfg.OAuth.Flow) == oauth.App {
		return nil, withHint(errors.New("oauth.flow is app: mailboxes use the organisation's grant and need no link"),
			"issue app passwords directly with \"mailgate password create\"")
	}
	if err := s.domainAllowed(a.Mailbox); err != nil {
		return nil, err
	}
	var err error
	if s.usesCodeFlow() {
		err = s.linkAuthCode(ctx, a.Mailbox, c)
	} else {
		err = s.linkDevice(ctx, a.Mailbox, c)
	}
	if errors.Is(err, oauth.ErrWrongMailbox) {
		return nil, withHint(err, "sign in as "+a.Mailbox+" at the provider, not as another user")
	}
	if err != nil {
		return nil, err
	}
	s.log.Info("mailbox linked", "user", a.Mailbox)
	return linkResult{Mailbox: a.Mailbox, Linked: true}, nil
}

// usesCodeFlow says whether linking uses the authorization-code flow:
// always for Google (its device flow cannot carry the Gmail scope), and for
// a generic provider that has an authorization endpoint but no device one.
func (s *service) usesCodeFlow() bool {
	o := s.cfg.OAuth
	p := provider(o.Provider)
	return p == oauth.Google || (p == oauth.Generic && o.DeviceAuthorizationURL == "" && o.AuthURL != "")
}

func (s *service) linkDevice(ctx context.Context, mailbox string, c conv) error {
	dc, err := s.oauth.StartDeviceLink(ctx, mailbox)
	if err != nil {
		return err
	}
	ev := deviceEvent{VerificationURI: dc.VerificationURI, VerificationURIComplete: dc.VerificationURIComplete,
		UserCode: dc.UserCode, ExpiresIn: dc.ExpiresIn}
	if err := c.Event(ev); err != nil {
		return err
	}
	return s.oauth.FinishDeviceLink(ctx, mailbox, dc)
}

func (s *service) linkAuthCode(ctx context.Context, mailbox string, c conv) error {
	l, err := s.oauth.StartAuthCodeLink(mailbox)
	if err != nil {
		return err
	}
	if err := c.Event(authorizeEvent{AuthorizeURL: l.URL}); err != nil {
		return err
	}
	redirected, err := c.Read()
	if err != nil {
		return err
	}
	return s.oauth.FinishAuthCodeLink(ctx, mailbox, l, redirected)
}

// accountJSON is one row of "account list".
type accountJSON struct {
	Mailbox     string     `json:"mailbox"`
	Linked      bool       `json:"linked"`
	LinkedAt    *time.Time `json:"linked_at"`
	LastRefresh *time.Time `json:"last_refresh"`
	NeedsRelink bool       `json:"needs_relink"`
	Reason      string     `json:"reason,omitempty"`
	Passwords   int        `json:"passwords"`
}

func opAccountList(ctx context.Context, s *service, args json.RawMessage, _ conv) (any, error) {
	accts, err := s.store.Accounts()
	if err != nil {
		return nil, storeError(err)
	}
	out := make([]accountJSON, 0, len(accts))
	for _, a := range accts {
		out = append(out, toAccountJSON(a))
	}
	return out, nil
}

func toAccountJSON(a store.Account) accountJSON {
	j := accountJSON{Mailbox: a.Mailbox, Linked: !a.Linked.IsZero(), Passwords: a.Passwords,
		NeedsRelink: a.NeedsRelink != "", Reason: a.NeedsRelink}
	if !a.Linked.IsZero() {
		j.LinkedAt = &a.Linked
	}
	if !a.LastRefresh.IsZero() {
		j.LastRefresh = &a.LastRefresh
	}
	return j
}

// unlinkResult says what unlinking did to the mailbox's app passwords.
type unlinkResult struct {
	Mailbox   string `json:"mailbox"`
	Passwords int    `json:"passwords_kept"`
	Sessions  int    `json:"sessions_closed"`
}

func opAccountUnlink(ctx context.Context, s *service, args json.RawMessage, _ conv) (any, error) {
	var a struct {
		Mailbox string `json:"mailbox"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := s.store.Unlink(a.Mailbox); errors.Is(err, store.ErrNotFound) {
		return nil, withHint(errorf("%s is not linked", a.Mailbox), "see linked mailboxes with \"mailgate account list\"")
	} else if err != nil {
		return nil, storeError(err)
	}
	// The cached access token would open the mailbox for up to an hour.
	if s.oauth != nil {
		s.oauth.Forget(a.Mailbox)
	}
	ps, err := s.store.ListPasswords(a.Mailbox)
	if err != nil {
		return nil, storeError(err)
	}
	// Live sessions hold upstream connections opened with the old grant:
	// end them, so unlinking stops access now and not at token expiry.
	n := s.closeSessions(func(ss *proxy.Session) bool { return ss.Mailbox == mailboxKey(a.Mailbox) })
	s.log.Info("mailbox unlinked", "user", a.Mailbox, "sessions_closed", n)
	return unlinkResult{Mailbox: a.Mailbox, Passwords: len(ps), Sessions: n}, nil
}
