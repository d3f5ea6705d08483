package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// getToken reads the record of (provider, mailbox); nil when there is none.
func getToken(b *bolt.Bucket, provider, mailbox string) (*tokenRecord, error) {
	v := b.Get(tokenKey(provider, mailbox))
	if v == nil {
		return nil, nil
	}
	return decodeToken(v, provider, mailbox)
}

func (b *boltDB) getToken(provider, mailbox string) (*tokenRecord, error) {
	var r *tokenRecord
	err := b.db.View(func(tx *bolt.Tx) error {
		var err error
		r, err = getToken(tx.Bucket(bucketTokens), provider, mailbox)
		return err
	})
	return r, err
}

func (b *boltDB) updateToken(provider, mailbox string, fn func(*tokenRecord) error, create bool) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		tb := tx.Bucket(bucketTokens)
		r, err := getToken(tb, provider, mailbox)
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
		return putJSON(tb, string(tokenKey(provider, mailbox)), r)
	})
}
