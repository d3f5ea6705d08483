package store

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// tokenRecord is a sealed refresh token, stored under
// tokens/<provider> NUL <mailbox>.
type tokenRecord struct {
	Provider    string    `json:"provider"`
	Mailbox     string    `json:"mailbox"`
	KeyID       string    `json:"key_id"` // which key sealed it, for rotation
	Sealed      []byte    `json:"sealed"` // nonce || XChaCha20-Poly1305 ciphertext
	Linked      time.Time `json:"linked"`
	LastRefresh time.Time `json:"last_refresh"`
	NeedsRelink string    `json:"needs_relink,omitempty"`
}

func tokenKey(provider, mailbox string) []byte {
	return []byte(provider + "\x00" + mailbox)
}

// tokenAD is the associated data of a sealed token: it binds the ciphertext
// to its provider and mailbox, so a record copied to another mailbox (or
// provider) does not open.
func tokenAD(provider, mailbox string) []byte {
	return []byte("mailgate-token\x00" + provider + "\x00" + mailbox)
}

func (k *keys) seal(provider, mailbox, token string) []byte {
	nonce := make([]byte, k.token.NonceSize(), k.token.NonceSize()+len(token)+k.token.Overhead())
	rand.Read(nonce) // 24 random bytes: XChaCha's nonce is long enough for that
	return k.token.Seal(nonce, nonce, []byte(token), tokenAD(provider, mailbox))
}

func (k *keys) open(r *tokenRecord) (string, error) {
	if r.KeyID != k.tokenKID {
		return "", fmt.Errorf("%w: sealed with key %s, key file gives %s", ErrUnseal, r.KeyID, k.tokenKID)
	}
	ns := k.token.NonceSize()
	if len(r.Sealed) < ns {
		return "", fmt.Errorf("%w: short record", ErrUnseal)
	}
	pt, err := k.token.Open(nil, r.Sealed[:ns], r.Sealed[ns:], tokenAD(r.Provider, r.Mailbox))
	if err != nil {
		return "", ErrUnseal
	}
	return string(pt), nil
}

func checkTokenArgs(provider, mailbox string) (string, error) {
	if err := checkProvider(provider); err != nil {
		return "", err
	}
	return CanonicalMailbox(mailbox)
}

// getToken reads the record of (provider, mailbox); nil when there is none.
func getToken(b *bolt.Bucket, provider, mailbox string) (*tokenRecord, error) {
	v := b.Get(tokenKey(provider, mailbox))
	if v == nil {
		return nil, nil
	}
	var r tokenRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("corrupt token record: %w", err)
	}
	// The AD uses the record's location, not the fields inside it, so a
	// record moved under another key fails to open even if its fields were
	// edited to match.
	r.Provider, r.Mailbox = provider, mailbox
	return &r, nil
}

// LoadRefreshToken returns the refresh token of mailbox at provider, or ""
// and no error when the mailbox is not linked. A token marked for relinking
// is still returned; the caller decides.
func (s *Store) LoadRefreshToken(provider, mailbox string) (string, error) {
	mailbox, err := checkTokenArgs(provider, mailbox)
	if err != nil {
		return "", err
	}
	var r *tokenRecord
	err = s.db.View(func(tx *bolt.Tx) error {
		r, err = getToken(tx.Bucket(bucketTokens), provider, mailbox)
		return err
	})
	if err != nil || r == nil {
		return "", err
	}
	return s.keys.open(r)
}

// SaveRefreshToken seals and stores token for (provider, mailbox). It sets
// Linked when the record is new or was marked for relinking, sets
// LastRefresh, and clears NeedsRelink.
func (s *Store) SaveRefreshToken(provider, mailbox, token string) error {
	mailbox, err := checkTokenArgs(provider, mailbox)
	if err != nil {
		return err
	}
	if token == "" {
		return fmt.Errorf("%w: empty refresh token", ErrInvalid)
	}
	now := s.now().UTC()
	return s.updateToken(provider, mailbox, func(r *tokenRecord) error {
		if r.Linked.IsZero() || r.NeedsRelink != "" {
			r.Linked = now
		}
		r.LastRefresh, r.NeedsRelink = now, ""
		r.KeyID, r.Sealed = s.keys.tokenKID, s.keys.seal(provider, mailbox, token)
		return nil
	}, true)
}

// MarkRelink keeps the token record but notes that the provider refused it
// (reason is the provider's error, e.g. "invalid_grant"), so that Accounts
// shows the mailbox needs re-linking. ErrNotFound if it was never linked.
func (s *Store) MarkRelink(provider, mailbox, reason string) error {
	mailbox, err := checkTokenArgs(provider, mailbox)
	if err != nil {
		return err
	}
	if reason == "" {
		reason = "relink required"
	}
	return s.updateToken(provider, mailbox, func(r *tokenRecord) error {
		r.NeedsRelink = reason
		return nil
	}, false)
}

// updateToken applies fn to the record of (provider, mailbox) in one write
// transaction; with create, a missing record starts empty.
func (s *Store) updateToken(provider, mailbox string, fn func(*tokenRecord) error, create bool) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		r, err := getToken(b, provider, mailbox)
		if err != nil {
			return err
		}
		if r == nil && !create {
			return fmt.Errorf("%w: no %s token for %s", ErrNotFound, provider, mailbox)
		}
		if r == nil {
			r = &tokenRecord{Provider: provider, Mailbox: mailbox}
		}
		if err := fn(r); err != nil {
			return err
		}
		return putJSON(b, string(tokenKey(provider, mailbox)), r)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("store token: %w", err)
	}
	return err
}
