package store

import (
	"encoding/binary"
	"fmt"

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
}

func migrateV1(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketPasswords, bucketTokens, bucketPadding} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
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
