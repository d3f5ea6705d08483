package store

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Verify checks secret for mailbox and scope (ScopeIMAP or ScopeSMTP) and
// returns the password that matched. Every authentication failure (invalid
// or unknown mailbox, empty, wrong, expired or revoked secret, missing scope)
// returns ErrAuthFailed itself, unwrapped, and costs the same time: the secret is
// compared in constant time against every password of the mailbox without
// stopping at a match, and the loop is padded with dummy records up to
// MaxPasswords. Only a failing database returns another error. Verify never writes to the database; the last-used time is
// kept in memory and flushed later (see Flush).
func (s *Store) Verify(mailbox, secret, scope, remote string) (Password, error) {
	canon, merr := CanonicalMailbox(mailbox)
	mac := s.keys.hashSecret(canon, normalizeSecret(secret))
	var rec *pwRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		var b *bolt.Bucket
		if merr == nil {
			b = tx.Bucket(bucketPasswords).Bucket([]byte(canon))
		}
		rec = s.match(b, mac)
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
	case !slices.Contains(rec.Scopes, scope):
		return s.fail(canon, remote, scope, "scope not granted")
	}
	rec.LastUsed = &LastUse{Time: now.UTC(), Remote: remote, Proto: scope}
	s.pending.note(canon, rec.ID, *rec.LastUsed)
	return rec.password(canon), nil
}

// match compares mac with the hash of every record in b (nil: unknown
// mailbox) and then with dummy records until MaxPasswords records have been
// decoded and compared, so that the work does not depend on how many
// passwords the mailbox has. ConstantTimeCompare returns early only on a
// length mismatch, and all hashes are 32 bytes.
func (s *Store) match(b *bolt.Bucket, mac []byte) *pwRecord {
	var found *pwRecord
	n := 0
	try := func(v []byte) {
		var r pwRecord
		err := json.Unmarshal(v, &r)
		eq := subtle.ConstantTimeCompare(r.Hash, mac)
		if eq == 1 && err == nil && r.Scheme == hashScheme && found == nil {
			found = &r
		}
		n++
	}
	if b != nil {
		b.ForEach(func(_, v []byte) error { try(v); return nil })
	}
	for n < s.maxPw {
		try(s.dummy)
	}
	return found
}

// dummyRecord is a record shaped like a real one whose hash no secret
// matches (a random value, not the HMAC of anything), used to pad match.
func dummyRecord() []byte {
	hash := make([]byte, 32)
	rand.Read(hash)
	r := pwRecord{
		ID: newID(), Name: "padding padding", Scopes: []string{ScopeIMAP, ScopeSMTP},
		Created: time.Now().UTC(), Scheme: "dummy", Hash: hash,
		LastUsed: &LastUse{Time: time.Now().UTC(), Remote: "192.0.2.1", Proto: ScopeIMAP},
	}
	b, _ := json.Marshal(r)
	return b
}

// fail logs why a login failed (never the secret) and returns ErrAuthFailed.
func (s *Store) fail(mailbox, remote, scope, reason string) (Password, error) {
	s.log.Debug("store: verify failed", "user", mailbox, "remote", remote, "proto", scope, "reason", reason)
	return Password{}, ErrAuthFailed
}
