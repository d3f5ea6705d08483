package store

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// pgMigrations is the ordered schema history of the postgres backend: the
// version of a database is the number of steps applied. Append new steps,
// never edit or reorder old ones. Values are stored as in bbolt: a
// password is encodeRecord's bytes (hash length, HMAC, JSON), a token the
// JSON of tokenRecord with its sealed fields, so a dump without the key
// file reveals nothing.
var pgMigrations = []string{
	`CREATE TABLE mailgate_passwords (
		mailbox text NOT NULL,
		id      text NOT NULL,
		value   bytea NOT NULL,
		PRIMARY KEY (mailbox, id));
	CREATE TABLE mailgate_padding (
		n     integer PRIMARY KEY,
		value bytea NOT NULL);
	CREATE TABLE mailgate_tokens (
		provider text NOT NULL,
		mailbox  text NOT NULL,
		value    bytea NOT NULL,
		PRIMARY KEY (provider, mailbox));
	CREATE INDEX mailgate_tokens_mailbox ON mailgate_tokens (mailbox);`,
}

// migrate brings the database up to len(list) in one transaction under an
// advisory lock, so that instances starting at the same moment migrate one
// after the other (the later ones find nothing to do), and a failed step
// leaves the database as it was. A newer database is refused untouched.
func (p *pgDB) migrate(ctx context.Context, list []string) error {
	return pgError(pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, lockMigrate); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS mailgate_meta (
			k text PRIMARY KEY, v bytea NOT NULL)`); err != nil {
			return err
		}
		have, err := pgVersion(ctx, tx)
		if err != nil {
			return err
		}
		if have > len(list) {
			return fmt.Errorf("%w: schema version %d, this mailgate knows up to %d; upgrade mailgate",
				ErrNewerSchema, have, len(list))
		}
		for i := have; i < len(list); i++ {
			if _, err := tx.Exec(ctx, list[i]); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO mailgate_meta (k, v) VALUES ('version', $1)
			ON CONFLICT (k) DO UPDATE SET v = excluded.v`, []byte(strconv.Itoa(len(list))))
		return err
	}))
}

// pgVersion returns the schema version; 0 for a new database.
func pgVersion(ctx context.Context, tx pgx.Tx) (int, error) {
	var v []byte
	err := tx.QueryRow(ctx, `SELECT v FROM mailgate_meta WHERE k = 'version'`).Scan(&v)
	if err == pgx.ErrNoRows {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return 0, fmt.Errorf("corrupt schema version %q", v)
	}
	return n, nil
}

// ensurePadding makes padding rows 0..n-1 exist (see the bbolt
// ensurePadding for why). Instances starting together insert the same row
// numbers; the first insert of each wins.
func (p *pgDB) ensurePadding(ctx context.Context, n int) error {
	var have int
	if err := p.pool.QueryRow(ctx, `SELECT count(*) FROM mailgate_padding WHERE n < $1`, n).Scan(&have); err != nil {
		return pgError(err)
	}
	if have >= n {
		return nil
	}
	b := &pgx.Batch{}
	for i := range n {
		v, err := encodeRecord(paddingRecord())
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO mailgate_padding (n, value) VALUES ($1, $2) ON CONFLICT DO NOTHING`, i, v)
	}
	if err := p.pool.SendBatch(ctx, b).Close(); err != nil {
		return pgError(fmt.Errorf("padding records: %w", err))
	}
	return nil
}
