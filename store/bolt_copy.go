package store

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

func (b *boltDB) dump(context.Context) (*dumpData, error) {
	d := &dumpData{}
	err := b.db.View(func(tx *bolt.Tx) error {
		err := forEachMailbox(tx, "", func(m string, pb *bolt.Bucket) error {
			return pb.ForEach(func(k, v []byte) error {
				d.passwords = append(d.passwords, rawRecord{m, string(k), bytes.Clone(v)})
				return nil
			})
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			p, m, _ := bytes.Cut(k, []byte{0})
			d.tokens = append(d.tokens, rawRecord{string(p), string(m), bytes.Clone(v)})
			return nil
		})
	})
	return d, err
}

func (b *boltDB) restore(_ context.Context, d *dumpData) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		root, tb := tx.Bucket(bucketPasswords), tx.Bucket(bucketTokens)
		k1, _ := root.Cursor().First()
		k2, _ := tb.Cursor().First()
		if k1 != nil || k2 != nil {
			return ErrNotEmpty
		}
		for _, r := range d.passwords {
			pb, err := root.CreateBucketIfNotExists([]byte(r.k1))
			if err != nil {
				return fmt.Errorf("%s: %w", r.k1, err)
			}
			if err := pb.Put([]byte(r.k2), r.value); err != nil {
				return err
			}
		}
		for _, r := range d.tokens {
			if err := tb.Put(tokenKey(r.k1, r.k2), r.value); err != nil {
				return err
			}
		}
		return nil
	})
}
