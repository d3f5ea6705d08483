package store

import (
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

func (b *boltDB) unlink(mailbox string) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		tb := tx.Bucket(bucketTokens)
		var del [][]byte
		tb.ForEach(func(k, _ []byte) error {
			if _, m, _ := strings.Cut(string(k), "\x00"); m == mailbox {
				del = append(del, slices.Clone(k))
			}
			return nil
		})
		if len(del) == 0 {
			return fmt.Errorf("%w: %s is not linked", ErrNotFound, mailbox)
		}
		for _, k := range del {
			if err := tb.Delete(k); err != nil {
				return fmt.Errorf("unlink %s: %w", mailbox, err)
			}
		}
		return nil
	})
}

func (b *boltDB) accounts() ([]Account, error) {
	var out []Account
	err := b.db.View(func(tx *bolt.Tx) error {
		counts, err := passwordCounts(tx)
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			provider, mailbox, _ := strings.Cut(string(k), "\x00")
			a, err := tokenAccount(provider, mailbox, v, counts[mailbox])
			out = append(out, a)
			return err
		})
		out = mergeAccounts(out, counts)
		return err
	})
	return out, err
}

func passwordCounts(tx *bolt.Tx) (map[string]int, error) {
	counts := make(map[string]int)
	err := forEachMailbox(tx, "", func(m string, b *bolt.Bucket) error {
		if n := b.Stats().KeyN; n > 0 {
			counts[m] = n
		}
		return nil
	})
	return counts, err
}
