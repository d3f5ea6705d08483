package store

import (
	"crypto/subtle"
	"fmt"
)

// Verify checks secret for mailbox and scope (ScopeIMAP, ScopePOP3 or
// ScopeSMTP: the protocol logging in) and returns the password that
// matched. A password grants scope when its scopes hold scope or ScopeAll. Every authentication failure (invalid
// or unknown mailbox, empty, wrong, expired or revoked secret, missing scope)
// returns ErrAuthFailed itself, unwrapped, and costs the same time: the
// secret is compared in constant time against every password of the mailbox
// without stopping at a match, and the loop is padded with padding records
// up to MaxPasswords. Only a failing database returns another error
// (wrapping ErrUnavailable on postgres). Verify never writes to the
// database; the last-used time is kept in memory and flushed later (see
// Flush).
func (s *Store) Verify(mailbox, secret, scope, remote string) (Password, error) {
	canon, merr := CanonicalMailbox(mailbox)
	secret = normalizeSecret(secret)
	mac := s.keys.hashSecret(canon, secret)
	rec, err := s.be.match(canon, merr == nil, mac, s.maxPw)
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

// pick returns v if its hash equals mac and nothing matched before, else
// found. The comparison always runs. ConstantTimeCompare returns early only
// on a length mismatch, and all hashes are 32 bytes.
func pick(found, v, mac []byte) []byte {
	if subtle.ConstantTimeCompare(recordHash(v), mac) == 1 && found == nil {
		return v
	}
	return found
}

// decodeMatch decodes the matching value (nil: none). Only the match is
// decoded, so the work before it does not depend on the records' contents.
func decodeMatch(found []byte) *pwRecord {
	if found == nil {
		return nil
	}
	r, err := decodeRecord(found)
	if err != nil || r.Scheme != hashScheme {
		return nil
	}
	return r
}

// fail logs why a login failed (never the secret) and returns ErrAuthFailed.
func (s *Store) fail(mailbox, remote, scope, reason string) (Password, error) {
	s.log.Debug("store: verify failed", "user", mailbox, "remote", remote, "proto", scope, "reason", reason)
	return Password{}, ErrAuthFailed
}
