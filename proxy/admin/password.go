package admin

import (
	"context"
	"errors"
	"time"

	"mailgate/store"
)

// AppPassword is the public form of an app password: never its hash, and
// its secret only once, from CreatePassword. The field names are a
// contract for scripts (-json).
type AppPassword struct {
	ID       string     `json:"id"`
	Mailbox  string     `json:"mailbox"`
	Name     string     `json:"name"`
	Scopes   []string   `json:"scopes"`
	Created  time.Time  `json:"created"`
	Expires  *time.Time `json:"expires"`
	LastUsed *LastUse   `json:"last_used"`
	Secret   string     `json:"password,omitempty"` // only from CreatePassword
}

// LastUse is the last successful login with an app password.
type LastUse struct {
	Time   time.Time `json:"time"`
	Remote string    `json:"remote"`
	Proto  string    `json:"proto"`
}

func toAppPassword(p store.Password) AppPassword {
	out := AppPassword{ID: p.ID, Mailbox: p.Mailbox, Name: p.Name, Scopes: p.Scopes, Created: p.Created}
	if !p.Expires.IsZero() {
		out.Expires = &p.Expires
	}
	if p.LastUsed != nil {
		out.LastUsed = &LastUse{Time: p.LastUsed.Time, Remote: p.LastUsed.Remote, Proto: p.LastUsed.Proto}
	}
	return out
}

// CreateArgs are the arguments of password.create.
type CreateArgs struct {
	Mailbox string    `json:"mailbox"`
	Name    string    `json:"name"`
	Scopes  []string  `json:"scopes"`  // imap, pop3, smtp or all; empty: all
	Expires time.Time `json:"expires"` // zero: never
}

// CreateResult is the new password, its secret shown once, and the
// settings the user must enter.
type CreateResult struct {
	AppPassword
	Settings Settings `json:"settings"`
}

// CreatePassword (password.create) issues an app password for a mailbox of
// an allowed domain.
func (s *Service) CreatePassword(ctx context.Context, a CreateArgs) (CreateResult, error) {
	if err := s.domainAllowed(a.Mailbox); err != nil {
		return CreateResult{}, err
	}
	p, secret, err := s.store.CreatePassword(a.Mailbox, a.Name, a.Scopes, a.Expires)
	if err != nil {
		return CreateResult{}, storeError(err)
	}
	s.logFor(ctx).Info("app password created", "user", p.Mailbox, "id", p.ID, "name", p.Name)
	out := CreateResult{AppPassword: toAppPassword(p), Settings: s.settings()}
	out.Secret = secret
	return out, nil
}

// ListArgs are the arguments of password.list.
type ListArgs struct {
	Mailbox string `json:"mailbox"` // empty: every mailbox
}

// ListPasswords (password.list) lists app passwords, never their secrets.
func (s *Service) ListPasswords(ctx context.Context, a ListArgs) ([]AppPassword, error) {
	ps, err := s.store.ListPasswords(a.Mailbox)
	if err != nil {
		return nil, storeError(err)
	}
	out := make([]AppPassword, 0, len(ps))
	for _, p := range ps {
		out = append(out, toAppPassword(p))
	}
	return out, nil
}

// RevokeArgs are the arguments of password.revoke.
type RevokeArgs struct {
	Mailbox string `json:"mailbox"`
	ID      string `json:"id"`
}

// RevokeResult says what was revoked and how many live sessions ended.
type RevokeResult struct {
	Revoked  []AppPassword `json:"revoked"`
	Sessions int           `json:"sessions_closed"`
}

// RevokePassword (password.revoke) deletes one app password, then ends the
// sessions that logged in with it.
func (s *Service) RevokePassword(ctx context.Context, a RevokeArgs) (RevokeResult, error) {
	// The store looks the id up among the mailbox's own passwords only: an
	// id of another mailbox is not found and nothing changes.
	p, err := s.store.RevokePassword(a.Mailbox, a.ID)
	if errors.Is(err, store.ErrNotFound) {
		s.logFor(ctx).Info("app password revoke refused", "user", a.Mailbox, "id", a.ID, "err", "no such password")
	}
	if err != nil {
		return RevokeResult{}, storeError(err)
	}
	// After the delete commits: a login that checked the password before
	// registers its session in time to be closed here, one that checks
	// after fails.
	n := 0
	if s.sessions != nil {
		n = s.sessions.ClosePassword(p.ID)
	}
	s.logFor(ctx).Info("app password revoked", "user", p.Mailbox, "id", p.ID, "sessions_closed", n)
	return RevokeResult{Revoked: []AppPassword{toAppPassword(p)}, Sessions: n}, nil
}

// RevokeAllArgs are the arguments of password.revoke-all.
type RevokeAllArgs struct {
	Mailboxes []string `json:"mailboxes"`
}

// RevokeAll (password.revoke-all) deletes every app password of the
// mailboxes, then ends each mailbox's sessions. On an error the result
// holds what was revoked before it.
func (s *Service) RevokeAll(ctx context.Context, a RevokeAllArgs) (RevokeResult, error) {
	out := RevokeResult{Revoked: []AppPassword{}}
	for _, m := range a.Mailboxes {
		ps, err := s.store.RevokeAll(m)
		if err != nil {
			return out, storeError(err)
		}
		for _, p := range ps {
			out.Revoked = append(out.Revoked, toAppPassword(p))
		}
		n := s.closeMailbox(m)
		out.Sessions += n
		s.logFor(ctx).Info("app passwords revoked", "user", m, "count", len(ps), "sessions_closed", n)
	}
	return out, nil
}

// closeMailbox ends the sessions of mailbox, named as the store names it.
func (s *Service) closeMailbox(mailbox string) int {
	m, err := store.CanonicalMailbox(mailbox)
	if s.sessions == nil || err != nil {
		return 0
	}
	return s.sessions.CloseMailbox(m)
}
