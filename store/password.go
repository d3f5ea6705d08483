package store

import (
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
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
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketPasswords).CreateBucketIfNotExists([]byte(mailbox))
		if err != nil {
			return err
		}
		if err := s.checkRoom(b, rec.Name); err != nil {
			return err
		}
		for b.Get([]byte(rec.ID)) != nil {
			rec.ID = newID()
		}
		return putRecord(b, rec)
	})
	if err != nil {
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
// without case, so "Phone" and "phone" cannot both exist).
func (s *Store) checkRoom(b *bolt.Bucket, name string) error {
	n := 0
	err := b.ForEach(func(_, v []byte) error {
		n++
		r, err := decodeRecord(v)
		if err != nil {
			return err
		}
		if strings.EqualFold(r.Name, name) {
			return fmt.Errorf("%w: %q", ErrDuplicateName, name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n >= s.maxPw {
		return fmt.Errorf("%w (limit %d)", ErrTooManyPasswords, s.maxPw)
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
	var out []Password
	err := s.db.View(func(tx *bolt.Tx) error {
		return forEachMailbox(tx, mailbox, func(m string, b *bolt.Bucket) error {
			var err error
			out, err = readPasswords(m, b, out)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list passwords: %w", err)
	}
	s.pending.merge(out)
	sortPasswords(out)
	return out, nil
}

// readPasswords appends the passwords in b (the bucket of mailbox) to out.
func readPasswords(mailbox string, b *bolt.Bucket, out []Password) ([]Password, error) {
	err := b.ForEach(func(_, v []byte) error {
		r, err := decodeRecord(v)
		if err != nil {
			return fmt.Errorf("%s: %w", mailbox, err)
		}
		out = append(out, r.password(mailbox))
		return nil
	})
	return out, err
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

// forEachMailbox calls fn for the password bucket of mailbox, or of every
// mailbox when mailbox is "". A mailbox without passwords is skipped.
func forEachMailbox(tx *bolt.Tx, mailbox string, fn func(string, *bolt.Bucket) error) error {
	root := tx.Bucket(bucketPasswords)
	if mailbox != "" {
		if b := root.Bucket([]byte(mailbox)); b != nil {
			return fn(mailbox, b)
		}
		return nil
	}
	return root.ForEachBucket(func(k []byte) error {
		return fn(string(k), root.Bucket(k))
	})
}

// RevokePassword deletes one password of mailbox and returns it.
func (s *Store) RevokePassword(mailbox, id string) (Password, error) {
	mailbox, err := CanonicalMailbox(mailbox)
	if err != nil {
		return Password{}, err
	}
	id = strings.ToLower(strings.TrimSpace(id))
	var p Password
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPasswords).Bucket([]byte(mailbox))
		if b == nil || b.Get([]byte(id)) == nil {
			return fmt.Errorf("%w: password %q of %s", ErrNotFound, id, mailbox)
		}
		r, err := decodeRecord(b.Get([]byte(id)))
		if err != nil {
			return err
		}
		p = r.password(mailbox)
		return deleteAndPrune(tx, b, mailbox, id)
	})
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
	var out []Password
	err = s.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketPasswords)
		b := root.Bucket([]byte(mailbox))
		if b == nil {
			return nil
		}
		var err error
		if out, err = readPasswords(mailbox, b, out); err != nil {
			return err
		}
		return root.DeleteBucket([]byte(mailbox))
	})
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

// deleteAndPrune deletes one record and drops the mailbox bucket once empty,
// so Accounts does not list mailboxes without passwords.
func deleteAndPrune(tx *bolt.Tx, b *bolt.Bucket, mailbox, id string) error {
	if err := b.Delete([]byte(id)); err != nil {
		return err
	}
	if k, _ := b.Cursor().First(); k == nil {
		return tx.Bucket(bucketPasswords).DeleteBucket([]byte(mailbox))
	}
	return nil
}
