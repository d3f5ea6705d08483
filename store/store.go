// Package store keeps mailgate's state: app passwords (as keyed hashes
// only), sealed OAuth tokens and the schema version, in one bbolt file (the
// default) or in PostgreSQL shared by several instances. The keys that
// protect both live in a separate key file, so a copy of the database alone
// reveals nothing usable.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
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
	// ErrUnavailable means the database cannot be reached or did not answer
	// in time (postgres); callers answer "try later", never "wrong password".
	ErrUnavailable = errors.New("store unavailable")
	// ErrUnsupported means the backend cannot do this (Backup on postgres:
	// pg_dump is the tool).
	ErrUnsupported = errors.New("not supported by this store backend")
	// ErrKeyMismatch means the key file is not the one the database was
	// written with (or is missing while the database holds data).
	ErrKeyMismatch = errors.New("key file does not match the database")
	// ErrNotEmpty means Copy's target already holds mailgate data.
	ErrNotEmpty = errors.New("target already holds mailgate data")
)

// Drivers for Options.Driver.
const (
	DriverBolt     = "bbolt"
	DriverPostgres = "postgres"
)

// Defaults for zero Options fields.
const (
	DefaultLockTimeout   = time.Second
	DefaultMaxPasswords  = 40
	DefaultFlushInterval = 30 * time.Second
)

// Options configure Open. Zero fields take the defaults above.
type Options struct {
	Driver        string           // DriverBolt (default when "") or DriverPostgres
	Path          string           // bbolt file; created 0600; bbolt only
	DSN           string           // postgres: a libpq connection string or URL (PGPASSWORD, .pgpass honoured)
	KeyFile       string           // 32 random bytes; created 0600 (dir 0700) if missing and the database is empty
	LockTimeout   time.Duration    // bbolt: how long to wait for another process's lock
	MaxPasswords  int              // app passwords per mailbox
	FlushInterval time.Duration    // how often coalesced last-used times are written
	Logger        *slog.Logger     // nil: slog.Default()
	Now           func() time.Time // nil: time.Now; tests set a fake clock
	// OnChange is called, from a store goroutine, for every change made by
	// this or another process that must end live sessions (postgres only;
	// bbolt has one process, whose callers know what they revoked). Nil:
	// nobody listens.
	OnChange func(Change)
}

// Store is an open database. It is safe for concurrent use.
type Store struct {
	be      backend
	keys    *keys
	log     *slog.Logger
	now     func() time.Time
	maxPw   int
	pending *lastUsed
	files   []string // the key file and, with bbolt, the database: see Uses

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the database and key file. It fails fast
// with ErrInUse when another process holds a bbolt database, with
// ErrNewerSchema when a newer mailgate wrote it, with ErrKeyMismatch when
// the key file is not the database's, and with ErrUnavailable when
// PostgreSQL cannot be reached.
func Open(opts *Options) (*Store, error) {
	o, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	be, err := openBackend(&o)
	if err != nil {
		return nil, err
	}
	k, err := openKeys(be, o.KeyFile)
	if err != nil {
		be.close()
		return nil, err
	}
	s := &Store{
		be: be, keys: k, log: o.Logger, now: o.Now,
		maxPw: o.MaxPasswords, pending: newLastUsed(), files: []string{o.KeyFile},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if o.Driver == DriverBolt {
		s.files = append(s.files, o.Path)
	}
	if err := be.start(o.OnChange); err != nil {
		be.close()
		return nil, err
	}
	go s.flushLoop(o.FlushInterval)
	return s, nil
}

func openBackend(o *Options) (backend, error) {
	if o.Driver == DriverPostgres {
		return openPostgres(o)
	}
	return openBolt(o)
}

func withDefaults(opts *Options) (Options, error) {
	if opts == nil {
		return Options{}, fmt.Errorf("%w: options required", ErrInvalid)
	}
	o := *opts
	if err := checkTarget(&o); err != nil {
		return Options{}, err
	}
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

// checkTarget checks that the driver is known and has what it needs.
func checkTarget(o *Options) error {
	switch o.Driver {
	case "", DriverBolt:
		o.Driver = DriverBolt
		if o.Path == "" {
			return fmt.Errorf("%w: database path required", ErrInvalid)
		}
	case DriverPostgres:
		if o.DSN == "" {
			return fmt.Errorf("%w: postgres connection string required", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: unknown store driver %q (want %s or %s)", ErrInvalid, o.Driver, DriverBolt, DriverPostgres)
	}
	return nil
}

// Close stops the flush goroutine, writes pending last-used times and closes
// the database. Calling it again returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		ferr := s.Flush()
		s.closeErr = errors.Join(ferr, s.be.close())
	})
	return s.closeErr
}

// Backup writes a consistent copy of a bbolt database to w while the store
// stays in use. Pending last-used times are flushed first so the copy has
// them. On postgres it returns ErrUnsupported: pg_dump is the tool.
func (s *Store) Backup(w io.Writer) (int64, error) {
	if err := s.Flush(); err != nil {
		s.log.Warn("store: backup without pending last-used times", "err", err)
	}
	return s.be.backup(w)
}

// Uses reports whether path names a file the store itself uses: the key
// file or the bbolt database (the same file, through whatever name).
// A backup must never be renamed over one of them: the database is held
// open, so changes made after the copy would be lost at the next start,
// and a key file replaced is a key lost.
func (s *Store) Uses(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	for _, f := range s.files {
		if ofi, err := os.Stat(f); err == nil && os.SameFile(fi, ofi) {
			return true
		}
	}
	return false
}

// Ping checks that the database answers (readiness); bbolt: nil while open.
func (s *Store) Ping(ctx context.Context) error {
	return s.be.ping(ctx)
}

// LockRefresh holds the refresh lock of mailbox at provider across every
// instance on the database until unlock is called, so that one instance
// refreshes and the others then read the token it saved (postgres: an
// advisory lock on a connection of its own; bbolt: the file lock already
// makes this process the only one, so only the process's own callers are
// serialized). It waits until ctx ends and then returns ctx's error.
func (s *Store) LockRefresh(ctx context.Context, provider, mailbox string) (unlock func(), err error) {
	mailbox, err = checkTokenArgs(provider, mailbox)
	if err != nil {
		return nil, err
	}
	return s.be.lockRefresh(ctx, provider, mailbox)
}
