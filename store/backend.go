package store

import (
	"context"
	"io"
	"sync"
)

// backend keeps the records; Store does what both backends share: argument
// checks, keys (hashing and sealing), last-used coalescing and the constant-
// time comparison. Both backends store the same bytes: a password record is
// encodeRecord's value, a token record the JSON of tokenRecord.
type backend interface {
	// start begins delivering changes to onChange (postgres only).
	start(onChange func(Change)) error
	close() error
	ping(ctx context.Context) error
	backup(w io.Writer) (int64, error)

	// keyCheck returns the stored key check value, nil if none, and
	// whether the database holds any password or token.
	keyCheck() (check []byte, hasData bool, err error)
	// setKeyCheck stores v unless a value is stored already, and returns
	// the stored value.
	setKeyCheck(v []byte) ([]byte, error)

	// insertPassword stores rec under mailbox after checking the limit and
	// the name (checkRoom), giving it a new id if its id is taken.
	insertPassword(mailbox string, rec *pwRecord, maxPw int) error
	// match compares mac with every record of mailbox (none when !known)
	// and padding up to maxPw comparisons, in constant time (pick), and
	// returns the decoded matching record or nil.
	match(mailbox string, known bool, mac []byte, maxPw int) (*pwRecord, error)
	getPassword(mailbox, id string) (*pwRecord, error) // nil: none
	listPasswords(mailbox string) ([]Password, error)  // "" every mailbox
	revokePassword(mailbox, id string) (Password, error)
	revokeAll(mailbox string) ([]Password, error)
	writeLastUsed(batch map[pwKey]LastUse) error

	getToken(provider, mailbox string) (*tokenRecord, error) // nil: none
	updateToken(provider, mailbox string, fn func(*tokenRecord) error, create bool) error
	unlink(mailbox string) error
	accounts() ([]Account, error)
	mailboxes(q MailboxQuery, pending map[pwKey]LastUse) (MailboxPage, error)
	lockRefresh(ctx context.Context, provider, mailbox string) (func(), error)

	// dump returns every password and token record as stored; restore
	// writes them into an empty database (else ErrNotEmpty).
	dump(ctx context.Context) (*dumpData, error)
	restore(ctx context.Context, d *dumpData) error
}

// dumpData is every record of a store, as stored.
type dumpData struct {
	passwords []rawRecord // key: mailbox, id
	tokens    []rawRecord // key: provider, mailbox
}

// rawRecord is one stored value and its two-part key.
type rawRecord struct {
	k1, k2 string
	value  []byte
}

// keyedLocks serializes callers per key inside one process, waiting no
// longer than their context. The postgres backend takes it before the
// advisory lock, so that N callers in one process hold one connection, not
// N, while they wait.
type keyedLocks struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	ch   chan struct{} // holds a token while the lock is held
	refs int
}

func (l *keyedLocks) lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = make(map[string]*keyedLock)
	}
	k := l.locks[key]
	if k == nil {
		k = &keyedLock{ch: make(chan struct{}, 1)}
		l.locks[key] = k
	}
	k.refs++
	l.mu.Unlock()
	select {
	case k.ch <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-k.ch; l.release(key, k) }) }, nil
	case <-ctx.Done():
		l.release(key, k)
		return nil, ctx.Err()
	}
}

func (l *keyedLocks) release(key string, k *keyedLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k.refs--; k.refs == 0 {
		delete(l.locks, key)
	}
}
