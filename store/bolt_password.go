package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

func (b *boltDB) insertPassword(mailbox string, rec *pwRecord, maxPw int) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		pb, err := tx.Bucket(bucketPasswords).CreateBucketIfNotExists([]byte(mailbox))
		if err != nil {
			return err
		}
		var values [][]byte
		pb.ForEach(func(_, v []byte) error { values = append(values, v); return nil })
		if err := checkRoom(values, rec.Name, maxPw); err != nil {
			return err
		}
		for pb.Get([]byte(rec.ID)) != nil {
			rec.ID = newID()
		}
		return putRecord(pb, rec)
	})
}

func (b *boltDB) getPassword(mailbox, id string) (*pwRecord, error) {
	var r *pwRecord
	err := b.db.View(func(tx *bolt.Tx) error {
		pb := tx.Bucket(bucketPasswords).Bucket([]byte(mailbox))
		if pb == nil {
			return nil
		}
		v := pb.Get([]byte(id))
		if v == nil {
			return nil
		}
		var err error
		r, err = decodeRecord(v)
		return err
	})
	return r, err
}

func (b *boltDB) listPasswords(mailbox string) ([]Password, error) {
	var out []Password
	err := b.db.View(func(tx *bolt.Tx) error {
		return forEachMailbox(tx, mailbox, func(m string, pb *bolt.Bucket) error {
			var err error
			out, err = readPasswords(m, pb, out)
			return err
		})
	})
	return out, err
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

func (b *boltDB) revokePassword(mailbox, id string) (Password, error) {
	var p Password
	err := b.db.Update(func(tx *bolt.Tx) error {
		pb := tx.Bucket(bucketPasswords).Bucket([]byte(mailbox))
		if pb == nil || pb.Get([]byte(id)) == nil {
			return fmt.Errorf("%w: password %q of %s", ErrNotFound, id, mailbox)
		}
		r, err := decodeRecord(pb.Get([]byte(id)))
		if err != nil {
			return err
		}
		p = r.password(mailbox)
		return deleteAndPrune(tx, pb, mailbox, id)
	})
	return p, err
}

func (b *boltDB) revokeAll(mailbox string) ([]Password, error) {
	var out []Password
	err := b.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketPasswords)
		pb := root.Bucket([]byte(mailbox))
		if pb == nil {
			return nil
		}
		var err error
		if out, err = readPasswords(mailbox, pb, out); err != nil {
			return err
		}
		return root.DeleteBucket([]byte(mailbox))
	})
	return out, err
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

func (b *boltDB) writeLastUsed(batch map[pwKey]LastUse) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketPasswords)
		for k, u := range batch {
			if err := writeLastUse(root.Bucket([]byte(k.mailbox)), k.id, u); err != nil {
				return err
			}
		}
		return nil
	})
}

func writeLastUse(b *bolt.Bucket, id string, u LastUse) error {
	if b == nil {
		return nil
	}
	v := b.Get([]byte(id))
	if v == nil {
		return nil
	}
	v, err := withLastUse(v, u)
	if err != nil || v == nil {
		return err
	}
	return b.Put([]byte(id), v)
}

// withLastUse returns the stored value v with last use u, or nil when v
// already holds a later one.
func withLastUse(v []byte, u LastUse) ([]byte, error) {
	r, err := decodeRecord(v)
	if err != nil {
		return nil, err
	}
	if r.LastUsed != nil && r.LastUsed.Time.After(u.Time) {
		return nil, nil
	}
	r.LastUsed = &u
	return encodeRecord(r)
}

// match: see backend.match and Store.Verify. Each slot costs one bbolt
// cursor step and one comparison whether the record is real or padding, so
// the work does not tell whether the mailbox exists or how many passwords
// it has. (Padding from a slice in memory measured several times cheaper
// than cursor steps, making unknown mailboxes the fast case.)
func (b *boltDB) match(mailbox string, known bool, mac []byte, maxPw int) (*pwRecord, error) {
	var rec *pwRecord
	err := b.db.View(func(tx *bolt.Tx) error {
		var found []byte
		n := 0
		if pb := tx.Bucket(bucketPasswords).Bucket([]byte(mailbox)); known && pb != nil {
			c := pb.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				found = pick(found, v, mac)
				n++
			}
		}
		c := tx.Bucket(bucketPadding).Cursor()
		for k, v := c.First(); k != nil && n < maxPw; k, v = c.Next() {
			found = pick(found, v, mac)
			n++
		}
		rec = decodeMatch(found)
		return nil
	})
	return rec, err
}
