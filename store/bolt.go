package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// boltDB is the embedded backend: one bbolt file that one process holds.
type boltDB struct {
	db    *bolt.DB
	path  string
	log   *slog.Logger
	locks keyedLocks
}

var _ backend = (*boltDB)(nil)

// keyKeyCheck is where the meta bucket keeps the key check value.
var keyKeyCheck = []byte("keycheck")

func openBolt(o *Options) (*boltDB, error) {
	db, err := openDB(o.Path, o.LockTimeout)
	if err != nil {
		return nil, err
	}
	if err := migrate(db, migrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("database %s: %w", o.Path, err)
	}
	if err := ensurePadding(db, o.MaxPasswords); err != nil {
		db.Close()
		return nil, fmt.Errorf("database %s: %w", o.Path, err)
	}
	b := &boltDB{db: db, path: o.Path, log: o.Logger}
	b.writePIDHint()
	return b, nil
}

// openDB opens the bbolt file with a lock timeout: without one, bolt.Open
// blocks forever behind the daemon's flock.
func openDB(path string, timeout time.Duration) (*bolt.DB, error) {
	if err := ensureDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, inUseError(path)
	}
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := tightenMode(path); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func inUseError(path string) error {
	if pid := readPIDHint(path); pid > 0 {
		return fmt.Errorf("database %s is %w (is the mailgate daemon running? pid %d)", path, ErrInUse, pid)
	}
	return fmt.Errorf("database %s is %w (is the mailgate daemon running?)", path, ErrInUse)
}

// tightenMode makes an existing file 0600: bolt.Open's mode applies only when
// it creates the file, and the database holds password hashes.
func tightenMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat database: %w", err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("database %s is readable by others and chmod failed: %w", path, err)
	}
	return nil
}

// ensureDir creates dir with mode 0700 if it does not exist; an existing
// directory is left as it is.
func ensureDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	return nil
}

func pidHintPath(path string) string { return path + ".pid" }

// writePIDHint records our pid next to the database so that a second process
// that fails to get the lock can name the holder. It is only a hint: the lock
// itself is bbolt's flock.
func (b *boltDB) writePIDHint() {
	pid := strconv.Itoa(os.Getpid()) + "\n"
	if err := os.WriteFile(pidHintPath(b.path), []byte(pid), 0o600); err != nil {
		b.log.Warn("store: cannot write pid hint", "err", err)
	}
}

func readPIDHint(path string) int {
	b, err := os.ReadFile(pidHintPath(path))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// start does nothing: with bbolt this process is the only writer, and its
// callers know what they revoked.
func (b *boltDB) start(func(Change)) error { return nil }

func (b *boltDB) close() error {
	os.Remove(pidHintPath(b.path))
	return b.db.Close()
}

// ping opens a read transaction: it fails only once the file is closed,
// since nothing else can take a file the process holds locked.
func (b *boltDB) ping(context.Context) error {
	return b.db.View(func(*bolt.Tx) error { return nil })
}

func (b *boltDB) backup(w io.Writer) (int64, error) {
	var n int64
	err := b.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, nil
}

func (b *boltDB) keyCheck() (check []byte, hasData bool, err error) {
	err = b.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyKeyCheck); v != nil {
			check = append([]byte(nil), v...)
		}
		k1, _ := tx.Bucket(bucketPasswords).Cursor().First()
		k2, _ := tx.Bucket(bucketTokens).Cursor().First()
		hasData = k1 != nil || k2 != nil
		return nil
	})
	return check, hasData, err
}

func (b *boltDB) setKeyCheck(v []byte) ([]byte, error) {
	var have []byte
	err := b.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if old := meta.Get(keyKeyCheck); old != nil {
			have = append([]byte(nil), old...)
			return nil
		}
		have = v
		return meta.Put(keyKeyCheck, v)
	})
	return have, err
}

// lockRefresh serializes this process's refreshes of one mailbox: the
// bbolt file lock already makes this process the only one.
func (b *boltDB) lockRefresh(ctx context.Context, provider, mailbox string) (func(), error) {
	return b.locks.lock(ctx, string(tokenKey(provider, mailbox)))
}
