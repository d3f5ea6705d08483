package store

import (
	"crypto/subtle"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Verify checks secret for mailbox and scope (ScopeIMAP, ScopePOP3 or
// ScopeSMTP: the protocol logging in) and returns the password that
// matched. A password grants scope when its scopes hold scope or ScopeAll. Every authentication failure (invalid
// or unknown mailbox, empty, wrong, expired or revoked secret, missing scope)
// returns ErrAuthFailed itself, unwrapped, and costs the same time: the
// secret is compared in constant time against every password of the mailbox
// without stopping at a match, and the loop is padded with padding records
// up to MaxPasswords. Only a failing database returns another error. Verify
// never writes to the database; the last-used time is kept in memory and
// flushed later (see Flush).
func (s *Store) Verify(mailbox, secret, scope, remote string) (Password, error) {
	canon, merr := CanonicalMailbox(mailbox)
	secret = normalizeSecret(secret)
	mac := s.keys.hashSecret(canon, secret)
	var rec *pwRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		var b *bolt.Bucket
		if merr == nil {
			b = tx.Bucket(bucketPasswords).Bucket([]byte(canon))
		}
		rec = s.match(b, tx.Bucket(bucketPadding), mac)
		return nil
	})
	if err != nil {
		// The store itself failed: not the client's fault, so not
		// ErrAuthFailed; the caller answers "try later".
		s.log.Error("store: verify", "user", canon, "remote", remote, "proto", scope, "err", err)
		return Password{}, fmt.Errorf("verify: %w", err)
	}
	now := s.now()
	switch {
	case merr != nil || rec == nil || secret == "":
		return s.fail(canon, remote, scope, "no match")
	case !rec.Expires.IsZero() && !now.Before(rec.Expires):
		return s.fail(canon, remote, scope, "expired")
	case !grants(rec.Scopes, scope):
		return s.fail(canon, remote, scope, "scope not granted")
	}
	rec.LastUsed = &LastUse{Time: now.UTC(), Remote: remote, Proto: scope}
	s.pending.note(canon, rec.ID, *rec.LastUsed)
	return rec.password(canon), nil
}

// match compares mac with the hash of every record in b (nil: unknown
// mailbox), without stopping at a match, and then with records of the
// padding bucket until MaxPasswords hashes have been compared. Each slot
// costs one bbolt cursor step and one comparison whether the record is real
// or padding, so the work does not tell whether the mailbox exists or how
// many passwords it has. (Padding from a slice in memory measured several
// times cheaper than cursor steps, making unknown mailboxes the fast case.)
// ConstantTimeCompare returns early only on a length mismatch, and all
// hashes are 32 bytes. Only the matching record, if any, is decoded.
func (s *Store) match(b, padding *bolt.Bucket, mac []byte) *pwRecord {
	var found []byte
	n := 0
	if b != nil {
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			found = pick(found, v, mac)
			n++
		}
	}
	c := padding.Cursor()
	for k, v := c.First(); k != nil && n < s.maxPw; k, v = c.Next() {
		found = pick(found, v, mac)
		n++
	}
	if found == nil {
		return nil
	}
	r, err := decodeRecord(found)
	if err != nil || r.Scheme != hashScheme {
		return nil
	}
	return r
}

// pick returns v if its hash equals mac and nothing matched before, else
// found. The comparison always runs.
func pick(found, v, mac []byte) []byte {
	if subtle.ConstantTimeCompare(recordHash(v), mac) == 1 && found == nil {
		return v
	}
	return found
}

// fail logs why a login failed (never the secret) and returns ErrAuthFailed.
func (s *Store) fail(mailbox, remote, scope, reason string) (Password, error) {
	s.log.Debug("store: verify failed", "user", mailbox, "remote", remote, "proto", scope, "reason", reason)
	return Password{}, ErrAuthFailed
}
