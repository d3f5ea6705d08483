package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Limits of the postgres backend. During an outage (PostgreSQL refusing,
// or hanging after a failover) a login must get "try later" within a few
// seconds, never hang and never "wrong password"; once the database is back
// everything recovers by itself within 15 seconds.
const (
	// pgConnectTimeout bounds one connection attempt: a host that drops
	// packets would otherwise keep a login for the OS's TCP timeout
	// (about 2 minutes on Linux).
	pgConnectTimeout = 3 * time.Second
	// pgQueryTimeout bounds every operation, connecting included: queries
	// take milliseconds, so 5 s means the database is gone or stuck.
	pgQueryTimeout = 5 * time.Second
	// pgPingTimeout bounds the check the pool makes of a connection idle
	// for more than a second before handing it out; a dead one (after a
	// restart or failover) is then replaced instead of failing a login.
	pgPingTimeout = 2 * time.Second
	// pgMaxConns: a login costs one short query, so 16 connections serve
	// thousands of logins a second; more would only queue inside a small
	// server and eat into max_connections (100 by default on managed
	// PostgreSQL) shared by every instance, each also holding one LISTEN
	// connection and up to pgLockConns.
	pgMaxConns = 16
	// pgLockConns caps the connections that hold refresh locks, in a pool
	// of their own: each is held for the provider's token round trip
	// (seconds at worst), and refreshes of many mailboxes at once must
	// not take the connections logins need. More refreshes at once wait.
	pgLockConns = 8
	// pgFlushTimeout bounds the background write of last uses, which
	// makes a round trip per password used since the last flush; it is
	// off the login path.
	pgFlushTimeout = 30 * time.Second
	// pgHealthCheckPeriod: idle connections are checked this often, so
	// that dead ones are dropped soon after an outage.
	pgHealthCheckPeriod = 5 * time.Second
)

// Advisory lock namespaces (the first key of pg_advisory_lock(int, int));
// the second key is hashtext of what is locked. A hash collision only
// serializes two unrelated mailboxes.
const (
	lockMigrate  = 0x6d670001 // schema migration: one instance at a time
	lockMailbox  = 0x6d670002 // password limit and names of one mailbox
	lockToken    = 0x6d670003 // read-modify-write of one token record
	lockRefresh  = 0x6d670004 // LockRefresh: one refresh per mailbox
	notifyChange = "mailgate_change"
)

// pgDB is the PostgreSQL backend, shared by several instances.
type pgDB struct {
	pool   *pgxpool.Pool
	lockDB *pgxpool.Pool   // LockRefresh's connections
	dsn    *pgx.ConnConfig // for the LISTEN connection
	log    *slog.Logger
	locks  keyedLocks
	listen struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	closeOnce sync.Once
}

var _ backend = (*pgDB)(nil)

func openPostgres(o *Options) (*pgDB, error) {
	cfg, err := pgxpool.ParseConfig(o.DSN)
	if err != nil {
		// The parse error may quote the DSN, password included.
		return nil, fmt.Errorf("%w: postgres connection string does not parse", ErrInvalid)
	}
	cfg.MaxConns = pgMaxConns
	cfg.HealthCheckPeriod = pgHealthCheckPeriod
	cfg.PingTimeout = pgPingTimeout
	cfg.ConnConfig.ConnectTimeout = pgConnectTimeout
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	lcfg := cfg.Copy()
	lcfg.MaxConns = pgLockConns
	lockDB, err := pgxpool.NewWithConfig(context.Background(), lcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	p := &pgDB{pool: pool, lockDB: lockDB, dsn: cfg.ConnConfig.Copy(), log: o.Logger}
	if err := p.setup(o.MaxPasswords); err != nil {
		p.close()
		return nil, fmt.Errorf("postgres %s: %w", describe(cfg.ConnConfig), err)
	}
	return p, nil
}

// describe names the database without its password, for errors.
func describe(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

func (p *pgDB) setup(maxPw int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*pgQueryTimeout)
	defer cancel()
	if err := p.migrate(ctx, pgMigrations); err != nil {
		return err
	}
	return p.ensurePadding(ctx, maxPw)
}

// op returns the context of one operation: bounded by pgQueryTimeout.
func op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), pgQueryTimeout)
}

// ours are the errors the backend's own code returns from inside a
// transaction; they pass through pgError unchanged.
var ours = []error{ErrNotFound, ErrDuplicateName, ErrTooManyPasswords, ErrNotEmpty,
	ErrNewerSchema, errCorrupt, errUnchanged, ErrInvalid}

// pgError sorts an error from a database call: our own errors as they
// are, an error the server reported about the statement as a plain error,
// and everything else (refused, reset, timed out, server shutting down)
// as ErrUnavailable, which callers answer with "try later".
func pgError(err error) error {
	if err == nil {
		return nil
	}
	for _, e := range ours {
		if errors.Is(err, e) {
			return err
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && !unavailableCode(pe.Code) {
		return fmt.Errorf("postgres: %w", err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// unavailableCode: SQLSTATE classes 08 (connection exception), 53
// (insufficient resources, e.g. too many connections), 57P (server
// shutting down or starting up) and 25006 (read-only transaction: a
// replica after a failover, before it is promoted).
func unavailableCode(code string) bool {
	return strings.HasPrefix(code, "08") || strings.HasPrefix(code, "53") ||
		strings.HasPrefix(code, "57P") || code == "25006"
}

// inTx runs fn in one transaction bounded by pgQueryTimeout.
func (p *pgDB) inTx(fn func(ctx context.Context, tx pgx.Tx) error) error {
	return p.inTxFor(pgQueryTimeout, fn)
}

// inTxFor runs fn in one transaction bounded by d, retried once as retry
// says unless the failure came at COMMIT, where the outcome is unknown.
// fn must start from scratch each time it is called.
func (p *pgDB) inTxFor(d time.Duration, fn func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	committing := false
	return p.retry(ctx, func() (bool, error) {
		err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
			if err := fn(ctx, tx); err != nil {
				return err
			}
			committing = true
			return nil
		})
		return !committing, err
	})
}

// read runs a read-only fn, retried once as retry says.
func (p *pgDB) read(ctx context.Context, fn func() error) error {
	return p.retry(ctx, func() (bool, error) { return true, fn() })
}

// retry runs fn and, when it failed for want of a working connection and
// may be repeated, empties the pool and runs it once more. A restart or
// failover of the database leaves every idle connection of the pool dead,
// and the pool learns it only by using them: without this, each would
// fail one login after the database is back.
func (p *pgDB) retry(ctx context.Context, fn func() (again bool, err error)) error {
	again, err := fn()
	err = pgError(err)
	if !again || !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
		return err
	}
	p.pool.Reset()
	_, err = fn()
	return pgError(err)
}

func (p *pgDB) close() error {
	p.closeOnce.Do(func() {
		if p.listen.cancel != nil {
			p.listen.cancel()
			<-p.listen.done
		}
		p.pool.Close()
		p.lockDB.Close()
	})
	return nil
}

func (p *pgDB) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
	defer cancel()
	return pgError(p.pool.Ping(ctx))
}

func (p *pgDB) backup(io.Writer) (int64, error) {
	return 0, fmt.Errorf("backup: %w: use pg_dump", ErrUnsupported)
}

func (p *pgDB) keyCheck() (check []byte, hasData bool, err error) {
	ctx, cancel := op()
	defer cancel()
	err = p.read(ctx, func() error {
		return p.pool.QueryRow(ctx, `SELECT (SELECT v FROM mailgate_meta WHERE k = 'keycheck'),
		EXISTS (SELECT 1 FROM mailgate_passwords) OR EXISTS (SELECT 1 FROM mailgate_tokens)`).Scan(&check, &hasData)
	})
	return check, hasData, err
}

func (p *pgDB) setKeyCheck(v []byte) ([]byte, error) {
	var have []byte
	err := p.inTx(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO mailgate_meta (k, v) VALUES ('keycheck', $1) ON CONFLICT DO NOTHING`, v)
		if err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT v FROM mailgate_meta WHERE k = 'keycheck'`).Scan(&have)
	})
	return have, err
}

// notify sends a change to every instance's listener when tx commits
// (NOTIFY is transactional). The payload is "p MAILBOX ID" or "m MAILBOX":
// canonical mailboxes and ids hold no spaces.
func notify(ctx context.Context, tx pgx.Tx, c Change) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChange, changePayload(c))
	return err
}

// changePayload is the notify payload of c; parseChange reads it.
func changePayload(c Change) string {
	if c.Kind == PasswordRevoked {
		return "p " + c.Mailbox + " " + c.PasswordID
	}
	return "m " + c.Mailbox
}

// parseChange reads a notify payload; ok false for anything else.
func parseChange(payload string) (Change, bool) {
	f := strings.Fields(payload)
	switch {
	case len(f) == 3 && f[0] == "p":
		return Change{Kind: PasswordRevoked, Mailbox: f[1], PasswordID: f[2]}, true
	case len(f) == 2 && f[0] == "m":
		return Change{Kind: MailboxRevoked, Mailbox: f[1]}, true
	}
	return Change{}, false
}
