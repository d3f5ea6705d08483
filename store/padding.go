package store

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ensurePadding makes the padding bucket hold at least n records. Verify
// walks them after a mailbox's real records (or instead of them, for an
// unknown mailbox) so every login does the same number of cursor steps and
// comparisons. Their hashes are random, not the HMAC of anything: no secret
// matches one (2^-256), so padding can never let anyone in. It writes only
// when the bucket is short: on the first open, or when MaxPasswords grew.
func ensurePadding(db *bolt.DB, n int) error {
	var have int
	db.View(func(tx *bolt.Tx) error {
		have = tx.Bucket(bucketPadding).Stats().KeyN
		return nil
	})
	if have >= n {
		return nil
	}
	err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPadding)
		for i := b.Stats().KeyN; i < n; i++ {
			if err := putRecord(b, paddingRecord()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("padding records: %w", err)
	}
	return nil
}

// paddingRecord looks like a password record (same encoding and size class)
// with a random hash.
func paddingRecord() *pwRecord {
	hash := make([]byte, sha256.Size)
	rand.Read(hash)
	return &pwRecord{
		ID: newID(), Name: "padding", Scopes: []string{ScopeAll},
		Scheme: "padding", Hash: hash,
	}
}
