package store

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// v1Record is a password as the schema-1 mailgate wrote it.
type v1Record struct {
	mailbox, secret string
	rec             *pwRecord
}

// writeV1 builds the database of o at schema version 1 (before "all"),
// holding old-default (imap+smtp), imap-only and smtp-only passwords.
func writeV1(t *testing.T, o *Options) []v1Record {
	t.Helper()
	k, err := loadKeys(o.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(o.Path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := migrate(db, migrations[:1]); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	used := &LastUse{Time: created.Add(time.Hour), Remote: "192.0.2.9", Proto: ScopeIMAP}
	recs := []v1Record{
		{"ann@example.com", "", &pwRecord{Name: "Outlook", Scopes: []string{"imap", "smtp"}, LastUsed: used}},
		{"ann@example.com", "", &pwRecord{Name: "Reader", Scopes: []string{"imap"}, Expires: created.AddDate(2, 0, 0)}},
		{"ann@example.com", "", &pwRecord{Name: "Scanner", Scopes: []string{"smtp"}, LastUsed: used}},
		{"bob@example.com", "", &pwRecord{Name: "Phone", Scopes: []string{"imap", "smtp"}, Expires: created.AddDate(1, 0, 0)}},
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for i := range recs {
			r := &recs[i]
			r.secret = newSecret()
			r.rec.ID, r.rec.Created, r.rec.Scheme = newID(), created, hashScheme
			r.rec.Hash = k.hashSecret(r.mailbox, r.secret)
			b, err := tx.Bucket(bucketPasswords).CreateBucketIfNotExists([]byte(r.mailbox))
			if err != nil {
				return err
			}
			if err := putRecord(b, r.rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// rawRecords returns every stored password value, keyed mailbox/id.
func rawRecords(t *testing.T, db *bolt.DB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	db.View(func(tx *bolt.Tx) error {
		return forEachMailbox(tx, "", func(m string, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				out[m+"/"+string(k)] = bytes.Clone(v)
				return nil
			})
		})
	})
	return out
}

// TestMigrateOldDefaultToAll: opening a schema-1 database turns exactly
// the imap+smtp passwords into "all" and changes nothing else about them;
// passwords limited to one protocol keep their scopes byte for byte.
func TestMigrateOldDefaultToAll(t *testing.T) {
	o, _ := testOptions(t)
	recs := writeV1(t, o)
	s := openT(t, o)
	s.bdb().View(func(tx *bolt.Tx) error {
		if v, _ := readVersion(tx.Bucket(bucketMeta)); v != 2 {
			t.Errorf("version %d, want 2", v)
		}
		return nil
	})
	raw := rawRecords(t, s.bdb())
	if len(raw) != len(recs) {
		t.Fatalf("%d records after the migration, want %d", len(raw), len(recs))
	}
	for _, r := range recs {
		v := raw[r.mailbox+"/"+r.rec.ID]
		got, err := decodeRecord(v)
		if err != nil {
			t.Fatalf("%s %s: %v", r.mailbox, r.rec.Name, err)
		}
		want := *r.rec
		if slices.Equal(want.Scopes, []string{"imap", "smtp"}) {
			want.Scopes = []string{ScopeAll}
		} else if old, _ := encodeRecord(r.rec); !bytes.Equal(v, old) {
			t.Errorf("%s %s: rewritten though its scopes %q stay", r.mailbox, r.rec.Name, r.rec.Scopes)
		}
		if !sameRecord(got, &want) {
			t.Errorf("%s %s: migrated to %+v, want %+v", r.mailbox, r.rec.Name, got, want)
		}
	}
	verifyAfterMigration(t, s, recs)
}

func sameRecord(a, b *pwRecord) bool {
	return a.ID == b.ID && a.Name == b.Name && slices.Equal(a.Scopes, b.Scopes) &&
		a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires) && a.Scheme == b.Scheme &&
		bytes.Equal(a.Hash, b.Hash) && (a.LastUsed == nil) == (b.LastUsed == nil) &&
		(a.LastUsed == nil || a.LastUsed.Time.Equal(b.LastUsed.Time) &&
			a.LastUsed.Remote == b.LastUsed.Remote && a.LastUsed.Proto == b.LastUsed.Proto)
}

// verifyAfterMigration: the old secrets still log in, migrated passwords
// now with POP3 too, the others only where they did before.
func verifyAfterMigration(t *testing.T, s *Store, recs []v1Record) {
	t.Helper()
	for _, r := range recs {
		for _, proto := range protocols {
			want := slices.Equal(r.rec.Scopes, []string{"imap", "smtp"}) || slices.Contains(r.rec.Scopes, proto)
			_, err := s.Verify(r.mailbox, r.secret, proto, "192.0.2.1")
			if (err == nil) != want {
				t.Errorf("%s %s over %s: %v, want ok=%v", r.mailbox, r.rec.Name, proto, err, want)
			}
		}
	}
}

// TestMigrateV2Idempotent: running the step again over its own result
// changes no byte.
func TestMigrateV2Idempotent(t *testing.T) {
	o, _ := testOptions(t)
	writeV1(t, o)
	s := openT(t, o)
	before := rawRecords(t, s.bdb())
	if err := s.bdb().Update(migrateV2); err != nil {
		t.Fatal(err)
	}
	if after := rawRecords(t, s.bdb()); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Error("a second run of migrateV2 changed records")
	}
}

// TestMigrateV2RollsBack: the step runs in the one transaction of migrate,
// so a failure after it (a crash, a later step) leaves schema 1 with the
// old scopes, to be migrated again on the next open.
func TestMigrateV2RollsBack(t *testing.T) {
	o, _ := testOptions(t)
	writeV1(t, o)
	db, err := bolt.Open(o.Path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	before := rawRecords(t, db)
	boom := errors.New("boom")
	list := append(slices.Clone(migrations), migration{"fails", func(*bolt.Tx) error { return boom }})
	if err := migrate(db, list); !errors.Is(err, boom) {
		t.Fatalf("migrate: %v", err)
	}
	if after := rawRecords(t, db); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Error("a failed migration left records changed")
	}
	db.View(func(tx *bolt.Tx) error {
		if v, _ := readVersion(tx.Bucket(bucketMeta)); v != 1 {
			t.Errorf("version %d after a failed migration, want 1", v)
		}
		return nil
	})
	db.Close()
	s := openT(t, o)
	for k, v := range rawRecords(t, s.bdb()) {
		if r, _ := decodeRecord(v); slices.Equal(r.Scopes, []string{"imap", "smtp"}) {
			t.Errorf("%s still imap+smtp after the retried migration", k)
		}
	}
}
