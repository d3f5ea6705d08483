package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mailgate/internal/testclock"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// testOptions returns options for a store in a fresh temp dir, with a fake
// clock and a flush interval long enough that only explicit flushes write.
func testOptions(t *testing.T) (*Options, *testclock.Clock) {
	t.Helper()
	dir := t.TempDir()
	c := testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	return &Options{
		Path:          filepath.Join(dir, "mailgate.db"),
		KeyFile:       filepath.Join(dir, "keys", "mailgate.key"),
		LockTimeout:   100 * time.Millisecond,
		FlushInterval: time.Hour,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:           c.Now,
	}, c
}

func openT(t *testing.T, o *Options) *Store {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t *testing.T) (*Store, *testclock.Clock) {
	t.Helper()
	o, c := testOptions(t)
	return openT(t, o), c
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %o, want %o", filepath.Base(path), got, want)
	}
}

func TestFileModes(t *testing.T) {
	o, _ := testOptions(t)
	openT(t, o)
	checkMode(t, o.Path, 0o600)
	checkMode(t, o.KeyFile, 0o600)
	checkMode(t, filepath.Dir(o.KeyFile), 0o700)
}

func TestLooseDatabaseModeTightened(t *testing.T) {
	o, _ := testOptions(t)
	s := openT(t, o)
	s.Close()
	if err := os.Chmod(o.Path, 0o644); err != nil {
		t.Fatal(err)
	}
	openT(t, o)
	checkMode(t, o.Path, 0o600)
}

func TestKeyFile(t *testing.T) {
	o, _ := testOptions(t)
	s := openT(t, o)
	key, err := os.ReadFile(o.KeyFile)
	if err != nil || len(key) != keyFileSize {
		t.Fatalf("key file: %d bytes, %v", len(key), err)
	}
	s.Close()
	openT(t, o).Close() // reopening keeps the key
	if again, _ := os.ReadFile(o.KeyFile); !bytes.Equal(key, again) {
		t.Error("key file changed on reopen")
	}
	for _, size := range []int{0, 16, 31, 33, 64} {
		if err := os.WriteFile(o.KeyFile, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(o); !errors.Is(err, ErrInvalid) {
			t.Errorf("key file of %d bytes: err = %v, want ErrInvalid", size, err)
		}
	}
}

func TestOpenRequiresPaths(t *testing.T) {
	o, _ := testOptions(t)
	for _, tc := range []*Options{nil, {KeyFile: o.KeyFile}, {Path: o.Path}} {
		if _, err := Open(tc); !errors.Is(err, ErrInvalid) {
			t.Errorf("Open(%+v) = %v, want ErrInvalid", tc, err)
		}
	}
}

func TestSecondOpenInUse(t *testing.T) {
	o, _ := testOptions(t)
	openT(t, o)
	// This returns after LockTimeout; without the timeout it would hang
	// until the test binary's own timeout fails it.
	_, err := Open(o)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open: %v, want ErrInUse", err)
	}
	want := fmt.Sprintf("database %s is in use by another process (is the mailgate daemon running? pid %d)", o.Path, os.Getpid())
	if err.Error() != want {
		t.Errorf("message %q\nwant    %q", err, want)
	}
}

func TestCloseReleasesLockAndPIDHint(t *testing.T) {
	o, _ := testOptions(t)
	s := openT(t, o)
	if _, err := os.Stat(o.Path + ".pid"); err != nil {
		t.Errorf("pid hint missing while open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(o.Path + ".pid"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid hint left after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	openT(t, o)
}

// setVersion writes a schema version straight into the file.
func setVersion(t *testing.T, path string, v uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte{0, 0, 0, 0, 0, 0, 0, byte(v)})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	o, _ := testOptions(t)
	openT(t, o).Close()
	setVersion(t, o.Path, uint64(len(migrations)+1))
	_, err := Open(o)
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open newer: %v, want ErrNewerSchema", err)
	}
	if !strings.Contains(err.Error(), "upgrade mailgate") {
		t.Errorf("message %q does not say to upgrade", err)
	}
	// The refused file is untouched and not left locked.
	db, err := bolt.Open(o.Path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if v, _ := readVersion(tx.Bucket(bucketMeta)); v != uint64(len(migrations)+1) {
			t.Errorf("version now %d", v)
		}
		return nil
	})
}

func TestBackup(t *testing.T) {
	o, _ := testOptions(t)
	s := openT(t, o)
	p, secret, err := s.CreatePassword("a@example.com", "laptop", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify("a@example.com", secret, ScopeIMAP, "192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := s.Backup(&buf)
	if err != nil || n != int64(buf.Len()) || n == 0 {
		t.Fatalf("Backup: n=%d len=%d err=%v", n, buf.Len(), err)
	}
	// The copy opens as a store with the same key file and holds the
	// password, including its last use (Backup flushed it).
	o2, _ := testOptions(t)
	o2.KeyFile = o.KeyFile
	if err := os.WriteFile(o2.Path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	b := openT(t, o2)
	ps, err := b.ListPasswords("a@example.com")
	if err != nil || len(ps) != 1 || ps[0].LastUsed == nil || ps[0].LastUsed.Remote != "192.0.2.7" {
		t.Fatalf("backup passwords: %+v %v", ps, err)
	}
	got, err := b.Verify("a@example.com", secret, ScopeSMTP, "192.0.2.8")
	if err != nil || got.ID != p.ID {
		t.Fatalf("Verify in backup: %+v %v", got, err)
	}
}

func paddingCount(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	s.bdb().View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketPadding).Stats().KeyN
		return nil
	})
	return n
}

func TestPaddingFollowsMaxPasswords(t *testing.T) {
	o, _ := testOptions(t)
	o.MaxPasswords = 5
	s := openT(t, o)
	if n := paddingCount(t, s); n != 5 {
		t.Errorf("padding records %d, want 5", n)
	}
	s.Close()
	o.MaxPasswords = 12
	s = openT(t, o)
	if n := paddingCount(t, s); n != 12 {
		t.Errorf("padding records after raising the limit %d, want 12", n)
	}
	// Padding lives outside the password tree: no mailbox, no account.
	if ps, _ := s.ListPasswords(""); len(ps) != 0 {
		t.Errorf("padding listed as passwords: %+v", ps)
	}
	if as, _ := s.Accounts(); len(as) != 0 {
		t.Errorf("padding listed as accounts: %+v", as)
	}
}
