package store

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Password describes an app password. The secret itself is never stored.
type Password struct {
	ID, Mailbox, Name string
	Scopes            []string  // ScopeAll, or some of ScopeIMAP, ScopePOP3, ScopeSMTP
	Created           time.Time // when it was issued
	Expires           time.Time // zero = never
	LastUsed          *LastUse  // nil = never used
}

// LastUse is the last successful login with a password.
type LastUse struct {
	Time   time.Time `json:"time"`
	Remote string    `json:"remote,omitempty"` // client address
	Proto  string    `json:"proto,omitempty"`  // protocol used: imap, pop3 or smtp
}

func (r *pwRecord) password(mailbox string) Password {
	return Password{
		ID: r.ID, Mailbox: mailbox, Name: r.Name, Scopes: slices.Clone(r.Scopes),
		Created: r.Created, Expires: r.Expires, LastUsed: r.LastUsed,
	}
}

// CreatePassword issues a new app password for mailbox. The secret is
// returned once and only its keyed hash is kept. Nil or empty scopes mean
// ScopeAll: every protocol, including ones added later; a zero expires
// means never.
func (s *Store) CreatePassword(mailbox, name string, scopes []string, expires time.Time) (Password, string, error) {
	rec, mailbox, err := s.newRecord(mailbox, name, scopes, expires)
	if err != nil {
		return Password{}, "", err
	}
	secret := newSecret()
	rec.Hash = s.keys.hashSecret(mailbox, secret)
	if err := s.be.insertPassword(mailbox, rec, s.maxPw); err != nil {
		return Password{}, "", fmt.Errorf("create password for %s: %w", mailbox, err)
	}
	return rec.password(mailbox), secret, nil
}

func (s *Store) newRecord(mailbox, name string, scopes []string, expires time.Time) (*pwRecord, string, error) {
	mailbox, err := CanonicalMailbox(mailbox)
	if err != nil {
		return nil, "", err
	}
	if name, err = checkName(name); err != nil {
		return nil, "", err
	}
	if scopes, err = checkScopes(scopes); err != nil {
		return nil, "", err
	}
	now := s.now().UTC()
	if !expires.IsZero() && !expires.After(now) {
		return nil, "", fmt.Errorf("%w: expiry %s is in the past", ErrInvalid, expires.Format(time.RFC3339))
	}
	rec := &pwRecord{
		ID: newID(), Name: name, Scopes: scopes, Created: now,
		Expires: expires.UTC(), Scheme: hashScheme, // UTC of zero is zero
	}
	return rec, mailbox, nil
}

// checkRoom enforces the per-mailbox limit and unique names (compared
// without case, so "Phone" and "phone" cannot both exist) over the stored
// values of one mailbox.
func checkRoom(values [][]byte, name string, maxPw int) error {
	for _, v := range values {
		r, err := decodeRecord(v)
		if err != nil {
			return err
		}
		if strings.EqualFold(r.Name, name) {
			return fmt.Errorf("%w: %q", ErrDuplicateName, name)
		}
	}
	if len(values) >= maxPw {
		return fmt.Errorf("%w (limit %d)", ErrTooManyPasswords, maxPw)
	}
	return nil
}

// ListPasswords returns the passwords of mailbox, or of every mailbox when
// mailbox is "", sorted by mailbox then creation time. Last-used times not
// yet flushed are included.
func (s *Store) ListPasswords(mailbox string) ([]Password, error) {
	if mailbox != "" {
		m, err := CanonicalMailbox(mailbox)
		if err != nil {
			return nil, err
		}
		mailbox = m
	}
	out, err := s.be.listPasswords(mailbox)
	if err != nil {
		return nil, fmt.Errorf("list passwords: %w", err)
	}
	s.pending.merge(out)
	sortPasswords(out)
	return out, nil
}

func sortPasswords(ps []Password) {
	slices.SortFunc(ps, func(a, b Password) int {
		return cmpOr(strings.Compare(a.Mailbox, b.Mailbox), a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
}

func cmpOr(cs ...int) int {
	for _, c := range cs {
		if c != 0 {
			return c
		}
	}
	return 0
}

// RevokePassword deletes one password of mailbox and returns it.
func (s *Store) RevokePassword(mailbox, id string) (Password, error) {
	mailbox, err := CanonicalMailbox(mailbox)
	if err != nil {
		return Password{}, err
	}
	id = strings.ToLower(strings.TrimSpace(id))
	p, err := s.be.revokePassword(mailbox, id)
	if err != nil {
		return Password{}, err
	}
	s.pending.forget(mailbox, id)
	return p, nil
}

// RevokeAll deletes every password of mailbox and returns what was deleted
// (empty, not an error, when there were none).
func (s *Store) RevokeAll(mailbox string) ([]Password, error) {
	mailbox, err := CanonicalMailbox(mailbox)
	if err != nil {
		return nil, err
	}
	out, err := s.be.revokeAll(mailbox)
	if err != nil {
		return nil, fmt.Errorf("revoke passwords of %s: %w", mailbox, err)
	}
	s.pending.merge(out)
	for _, p := range out {
		s.pending.forget(mailbox, p.ID)
	}
	sortPasswords(out)
	return out, nil
}

// PasswordActive reports whether password id of mailbox still exists and
// has not expired: the re-check of a live session after a Resync. A
// failing database returns an error (wrapping ErrUnavailable on postgres).
func (s *Store) PasswordActive(mailbox, id string) (bool, error) {
	mailbox, err := CanonicalMailbox(mailbox)
	if err != nil {
		return false, nil
	}
	r, err := s.be.getPassword(mailbox, strings.ToLower(strings.TrimSpace(id)))
	if err != nil {
		return false, fmt.Errorf("password active: %w", err)
	}
	return r != nil && (r.Expires.IsZero() || s.now().Before(r.Expires)), nil
}
