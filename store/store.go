// Package store keeps mailgate's state in one bbolt file: app passwords (as
// keyed hashes only), sealed OAuth refresh tokens and the schema version. The
// keys that protect both live in a separate key file, so a copy of the
// database alone reveals nothing usable.
package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Errors callers inspect with errors.Is.
var (
	// ErrInUse means another process (usually the running daemon) holds the
	// database lock.
	ErrInUse = errors.New("in use by another process")
	// ErrNewerSchema means the database was written by a newer mailgate.
	ErrNewerSchema = errors.New("database written by a newer mailgate")
	// ErrNotFound means the password, mailbox or token does not exist.
	ErrNotFound = errors.New("not found")
	// ErrTooManyPasswords means the mailbox already has Options.MaxPasswords.
	ErrTooManyPasswords = errors.New("too many app passwords for this mailbox")
	// ErrDuplicateName means the mailbox already has a password with that name.
	ErrDuplicateName = errors.New("an app password with this name already exists")
	// ErrAuthFailed is the one error Verify returns for every kind of failure
	// (unknown mailbox, wrong, expired, empty, wrong scope), so that callers
	// cannot leak which it was.
	ErrAuthFailed = errors.New("authentication failed")
	// ErrInvalid means an argument (mailbox, name, scope, option) is not valid.
	ErrInvalid = errors.New("invalid argument")
	// ErrUnseal means a sealed refresh token could not be opened: the key
	// file is not the one it was sealed with, or the record was tampered with
	// or moved to another mailbox.
	ErrUnseal = errors.New("refresh token cannot be unsealed (wrong key file or altered record)")
)

// Defaults for zero Options fields.
const (
	DefaultLockTimeout   = time.Second
	DefaultMaxPasswords  = 40
	DefaultFlushInterval = 30 * time.Second
)

// Options configure Open. Zero fields take the defaults above.
type Options struct {
	Path          string           // bbolt file; created 0600
	KeyFile       string           // 32 random bytes; created 0600 (dir 0700) if missing
	LockTimeout   time.Duration    // how long to wait for another process's lock
	MaxPasswords  int              // app passwords per mailbox
	FlushInterval time.Duration    // how often coalesced last-used times are written
	Logger        *slog.Logger     // nil: slog.Default()
	Now           func() time.Time // nil: time.Now; tests set a fake clock
}

// Store is an open database. It is safe for concurrent use.
type Store struct {
	db      *bolt.DB
	path    string
	keys    *keys
	log     *slog.Logger
	now     func() time.Time
	maxPw   int
	pending *lastUsed

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the database and key file. It fails fast
// with ErrInUse when another process holds the database, and with
// ErrNewerSchema when a newer mailgate wrote it.
func Open(opts *Options) (*Store, error) {
	o, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	k, err := loadKeys(o.KeyFile)
	if err != nil {
		return nil, err
	}
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
	s := &Store{
		db: db, path: o.Path, keys: k, log: o.Logger, now: o.Now,
		maxPw: o.MaxPasswords, pending: newLastUsed(),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	s.writePIDHint()
	go s.flushLoop(o.FlushInterval)
	return s, nil
}

func withDefaults(opts *Options) (Options, error) {
	if opts == nil || opts.Path == "" {
		return Options{}, fmt.Errorf("%w: database path required", ErrInvalid)
	}
	o := *opts
	if o.KeyFile == "" {
		// No default next to the database: keeping the key apart is what
		// makes a stolen database useless.
		return Options{}, fmt.Errorf("%w: key file path required", ErrInvalid)
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.MaxPasswords <= 0 {
		o.MaxPasswords = DefaultMaxPasswords
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
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
func (s *Store) writePIDHint() {
	pid := strconv.Itoa(os.Getpid()) + "\n"
	if err := os.WriteFile(pidHintPath(s.path), []byte(pid), 0o600); err != nil {
		s.log.Warn("store: cannot write pid hint", "err", err)
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

// Close stops the flush goroutine, writes pending last-used times and closes
// the database. Calling it again returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		ferr := s.Flush()
		os.Remove(pidHintPath(s.path))
		s.closeErr = errors.Join(ferr, s.db.Close())
	})
	return s.closeErr
}

// Backup writes a consistent copy of the database to w while the store stays
// in use. Pending last-used times are flushed first so the copy has them.
func (s *Store) Backup(w io.Writer) (int64, error) {
	if err := s.Flush(); err != nil {
		s.log.Warn("store: backup without pending last-used times", "err", err)
	}
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, nil
}
