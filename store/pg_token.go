package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func (p *pgDB) getToken(provider, mailbox string) (*tokenRecord, error) {
	ctx, cancel := op()
	defer cancel()
	var v []byte
	err := p.read(ctx, func() error {
		err := p.pool.QueryRow(ctx, `SELECT value FROM mailgate_tokens WHERE provider = $1 AND mailbox = $2`,
			provider, mailbox).Scan(&v)
		if err == pgx.ErrNoRows {
			v, err = nil, nil
		}
		return err
	})
	if err != nil || v == nil {
		return nil, err
	}
	return decodeToken(v, provider, mailbox)
}

// updateToken reads, changes and writes one token record under an
// advisory lock of its own, so two instances never lose each other's
// change (a row lock cannot guard a record that does not exist yet).
func (p *pgDB) updateToken(provider, mailbox string, fn func(*tokenRecord) error, create bool) error {
	return p.inTx(func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`,
			lockToken, provider+" "+mailbox); err != nil {
			return err
		}
		var v []byte
		err := tx.QueryRow(ctx, `SELECT value FROM mailgate_tokens WHERE provider = $1 AND mailbox = $2`,
			provider, mailbox).Scan(&v)
		var r *tokenRecord
		switch {
		case err == pgx.ErrNoRows && !create:
			return fmt.Errorf("%w: no %s token for %s", ErrNotFound, provider, mailbox)
		case err == pgx.ErrNoRows:
			r = &tokenRecord{Provider: provider, Mailbox: mailbox}
		case err != nil:
			return err
		default:
			if r, err = decodeToken(v, provider, mailbox); err != nil {
				return err
			}
		}
		if err := fn(r); err != nil {
			return err
		}
		v, err = json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO mailgate_tokens (provider, mailbox, value) VALUES ($1, $2, $3)
			ON CONFLICT (provider, mailbox) DO UPDATE SET value = excluded.value`, provider, mailbox, v)
		return err
	})
}

func (p *pgDB) unlink(mailbox string) error {
	return p.inTx(func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM mailgate_tokens WHERE mailbox = $1`, mailbox)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: %s is not linked", ErrNotFound, mailbox)
		}
		return notify(ctx, tx, Change{Kind: MailboxRevoked, Mailbox: mailbox})
	})
}

// readOnly runs fn in one repeatable-read transaction, so that what it
// reads in several queries is one snapshot (as a bbolt View is).
func (p *pgDB) readOnly(fn func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := op()
	defer cancel()
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	return p.read(ctx, func() error {
		return pgx.BeginTxFunc(ctx, p.pool, opts, func(tx pgx.Tx) error { return fn(ctx, tx) })
	})
}

func (p *pgDB) accounts() ([]Account, error) {
	var out []Account
	err := p.readOnly(func(ctx context.Context, tx pgx.Tx) error {
		out = nil
		counts := make(map[string]int)
		var m, provider string
		var n int
		rows, _ := tx.Query(ctx, `SELECT mailbox, count(*) FROM mailgate_passwords GROUP BY mailbox`)
		if _, err := pgx.ForEachRow(rows, []any{&m, &n}, func() error { counts[m] = n; return nil }); err != nil {
			return err
		}
		var v []byte
		rows, _ = tx.Query(ctx, `SELECT provider, mailbox, value FROM mailgate_tokens`)
		_, err := pgx.ForEachRow(rows, []any{&provider, &m, &v}, func() error {
			a, err := tokenAccount(provider, m, v, counts[m])
			out = append(out, a)
			return err
		})
		out = mergeAccounts(out, counts)
		return err
	})
	return out, err
}

// mailboxes reads the names first, then only the rows of the page, as the
// bbolt version does. Names are filtered and sorted here, not in SQL, so
// that both backends match and order alike (byte order, ASCII folding)
// whatever the database's collation.
func (p *pgDB) mailboxes(q MailboxQuery, pending map[pwKey]LastUse) (MailboxPage, error) {
	needle := queryNeedle(q)
	var page MailboxPage
	err := p.readOnly(func(ctx context.Context, tx pgx.Tx) error {
		pw, tokens, err := pgNames(ctx, tx, needle)
		if err != nil {
			return err
		}
		names := mergeNames(pw, tokens)
		page.Total = len(names)
		names = pageOf(names, q.Offset, q.Limit)
		page.Rows, err = pgSummaries(ctx, tx, names, tokens, pending)
		return err
	})
	return page, err
}

// pgNames returns the sorted mailboxes with passwords and the token
// references whose mailbox contains needle.
func pgNames(ctx context.Context, tx pgx.Tx, needle []byte) ([]string, []tokenRef, error) {
	var pw []string
	var m, provider string
	rows, _ := tx.Query(ctx, `SELECT DISTINCT mailbox FROM mailgate_passwords`)
	_, err := pgx.ForEachRow(rows, []any{&m}, func() error {
		if containsFold([]byte(m), needle) {
			pw = append(pw, m)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(pw)
	var tokens []tokenRef
	rows, _ = tx.Query(ctx, `SELECT provider, mailbox FROM mailgate_tokens`)
	_, err = pgx.ForEachRow(rows, []any{&provider, &m}, func() error {
		if containsFold([]byte(m), needle) {
			tokens = append(tokens, tokenRef{mailbox: m, provider: provider})
		}
		return nil
	})
	slices.SortFunc(tokens, func(a, b tokenRef) int {
		return cmpOr(strings.Compare(a.mailbox, b.mailbox), strings.Compare(a.provider, b.provider))
	})
	return pw, tokens, err
}

// pgSummaries reads the passwords and tokens of names, one query each.
func pgSummaries(ctx context.Context, tx pgx.Tx, names []string, tokens []tokenRef, pending map[pwKey]LastUse) ([]MailboxSummary, error) {
	rows := make([]MailboxSummary, len(names))
	at := make(map[string]*MailboxSummary, len(names))
	for i, m := range names {
		rows[i].Mailbox = m
		at[m] = &rows[i]
	}
	var m, id, provider string
	var v []byte
	q, _ := tx.Query(ctx, `SELECT mailbox, id, value FROM mailgate_passwords WHERE mailbox = ANY($1)`, names)
	_, err := pgx.ForEachRow(q, []any{&m, &id, &v}, func() error { return summarizePassword(at[m], id, v, pending) })
	if err != nil {
		return nil, err
	}
	values := make(map[tokenRef][]byte)
	q, _ = tx.Query(ctx, `SELECT provider, mailbox, value FROM mailgate_tokens WHERE mailbox = ANY($1)`, names)
	_, err = pgx.ForEachRow(q, []any{&provider, &m, &v}, func() error {
		values[tokenRef{mailbox: m, provider: provider}] = slices.Clone(v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	get := func(t tokenRef) []byte { return values[t] }
	for i := range rows {
		if err := summarizeTokens(&rows[i], get, tokensOf(tokens, rows[i].Mailbox)); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// lockRefresh takes the process's own lock of the mailbox first, so that
// callers of one instance wait without holding a connection each, then
// the advisory lock on a connection of the lock pool held until unlock. If the
// connection dies, the server drops the lock with it.
func (p *pgDB) lockRefresh(ctx context.Context, provider, mailbox string) (func(), error) {
	key := provider + " " + mailbox
	local, err := p.locks.lock(ctx, key)
	if err != nil {
		return nil, err
	}
	conn, err := p.lockDB.Acquire(ctx)
	if err != nil {
		local()
		return nil, ctxOr(ctx, err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, lockRefresh, key); err != nil {
		conn.Release() // a connection whose wait was cut is closed by pgx; the pool drops it
		local()
		return nil, ctxOr(ctx, err)
	}
	var once sync.Once
	return func() { once.Do(func() { p.unlockRefresh(conn, key); local() }) }, nil
}

// ctxOr returns ctx's error when ctx ended, else err as pgError sorts it.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return pgError(err)
}

func (p *pgDB) unlockRefresh(conn *pgxpool.Conn, key string) {
	ctx, cancel := op()
	defer cancel()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, lockRefresh, key); err != nil {
		// Closing the connection is what surely drops the lock.
		p.log.Warn("store: refresh unlock failed; closing its connection", "err", err)
		conn.Conn().Close(ctx)
	}
	conn.Release()
}
