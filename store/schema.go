package store

import (
	"encoding/binary"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Bucket names. Passwords are nested: passwords/<mailbox>/<id> = record, so
// that Verify reads one mailbox's records and nothing else.
var (
	bucketMeta      = []byte("meta")
	bucketPasswords = []byte("passwords")
	bucketTokens    = []byte("tokens")
	bucketPadding   = []byte("padding") // see ensurePadding
	keyVersion      = []byte("version")
)

// migration upgrades the database by one schema version.
type migration struct {
	name string
	up   func(tx *bolt.Tx) error
}

// migrations is the ordered schema history: the schema version of a database
// is the number of migrations applied to it. Append new steps, never edit or
// reorder old ones.
var migrations = []migration{
	{"v1: meta, passwords, tokens and padding buckets", migrateV1},
	{"v2: passwords with the old default scopes imap+smtp get all", migrateV2},
}

func migrateV1(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketPasswords, bucketTokens, bucketPadding} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// migrateV2 turns the scopes of every password that holds exactly imap and
// smtp, the default before "all" existed, into ScopeAll, so that passwords
// created without a scope keep working with every protocol, POP3 included.
// Passwords limited to one protocol stay as they are. Only the scopes
// change: id, name, hash, times and last use are written back unchanged.
// Records that do not decode are left alone (ListPasswords reports them).
func migrateV2(tx *bolt.Tx) error {
	root := tx.Bucket(bucketPasswords)
	var mailboxes [][]byte
	root.ForEachBucket(func(k []byte) error {
		mailboxes = append(mailboxes, slices.Clone(k))
		return nil
	})
	// Written after each walk: bbolt cursors are not safe across puts.
	for _, m := range mailboxes {
		b := root.Bucket(m)
		for _, r := range oldDefaults(b) {
			r.Scopes = []string{ScopeAll}
			if err := putRecord(b, r); err != nil {
				return fmt.Errorf("%s: %w", m, err)
			}
		}
	}
	return nil
}

// oldDefaults returns the records of b whose scopes are exactly imap and
// smtp.
func oldDefaults(b *bolt.Bucket) []*pwRecord {
	var out []*pwRecord
	b.ForEach(func(_, v []byte) error {
		r, err := decodeRecord(v)
		if err == nil && slices.Equal(r.Scopes, []string{ScopeIMAP, ScopeSMTP}) {
			out = append(out, r)
		}
		return nil
	})
	return out
}

// migrate brings db up to len(list) in one transaction, so a failed step
// leaves the file as it was. A database newer than list is refused untouched.
func migrate(db *bolt.DB, list []migration) error {
	return db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		have, err := readVersion(meta)
		if err != nil {
			return err
		}
		if have > uint64(len(list)) {
			return fmt.Errorf("%w: schema version %d, this mailgate knows up to %d; upgrade mailgate",
				ErrNewerSchema, have, len(list))
		}
		if have == uint64(len(list)) {
			return nil
		}
		for i := have; i < uint64(len(list)); i++ {
			if err := list[i].up(tx); err != nil {
				return fmt.Errorf("migration %d (%s): %w", i+1, list[i].name, err)
			}
		}
		return meta.Put(keyVersion, binary.BigEndian.AppendUint64(nil, uint64(len(list))))
	})
}

// readVersion returns the schema version; 0 means a new, empty database.
func readVersion(meta *bolt.Bucket) (uint64, error) {
	v := meta.Get(keyVersion)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("corrupt schema version (%d bytes)", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
