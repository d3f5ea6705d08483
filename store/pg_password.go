package store

import (
	"bytes"
	"context"
	"crypto/subtle"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// matchSQL returns the values of the mailbox's records ($2 false: none)
// followed by padding rows up to $3 rows in all: as many comparisons as
// bbolt's match makes, in one round trip. pgx prepares it once per
// connection and reuses it (statement cache), so a login costs one query
// and never a write. (Counting the mailbox's rows again in a subquery
// measured faster than a CTE read twice: both are index scans of a few
// rows.)
const matchSQL = `SELECT value FROM mailgate_passwords WHERE mailbox = $1 AND $2
UNION ALL
SELECT value FROM mailgate_padding
WHERE n < $3 - (SELECT count(*) FROM mailgate_passwords WHERE mailbox = $1 AND $2)`

func (p *pgDB) match(mailbox string, known bool, mac []byte, maxPw int) (*pwRecord, error) {
	ctx, cancel := op()
	defer cancel()
	var found []byte
	err := p.read(ctx, func() error {
		found = nil
		rows, _ := p.pool.Query(ctx, matchSQL, mailbox, known, maxPw)
		defer rows.Close()
		for rows.Next() {
			// RawValues: bytea comes in binary format, the stored bytes
			// themselves, valid until the next row; only a match is copied.
			v := rows.RawValues()[0]
			if subtle.ConstantTimeCompare(recordHash(v), mac) == 1 && found == nil {
				found = bytes.Clone(v)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return decodeMatch(found), nil
}

func (p *pgDB) insertPassword(mailbox string, rec *pwRecord, maxPw int) error {
	return p.inTx(func(ctx context.Context, tx pgx.Tx) error {
		// Serializes creates of one mailbox across instances, so the
		// limit and unique names hold.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockMailbox, mailbox); err != nil {
			return err
		}
		values, err := mailboxValues(ctx, tx, mailbox)
		if err != nil {
			return err
		}
		if err := checkRoom(values, rec.Name, maxPw); err != nil {
			return err
		}
		for {
			v, err := encodeRecord(rec)
			if err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `INSERT INTO mailgate_passwords (mailbox, id, value) VALUES ($1, $2, $3)
				ON CONFLICT DO NOTHING`, mailbox, rec.ID, v)
			if err != nil || tag.RowsAffected() == 1 {
				return err
			}
			rec.ID = newID()
		}
	})
}

func mailboxValues(ctx context.Context, tx pgx.Tx, mailbox string) ([][]byte, error) {
	rows, err := tx.Query(ctx, `SELECT value FROM mailgate_passwords WHERE mailbox = $1`, mailbox)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[[]byte])
}

func (p *pgDB) getPassword(mailbox, id string) (*pwRecord, error) {
	ctx, cancel := op()
	defer cancel()
	var v []byte
	err := p.read(ctx, func() error {
		err := p.pool.QueryRow(ctx, `SELECT value FROM mailgate_passwords WHERE mailbox = $1 AND id = $2`, mailbox, id).Scan(&v)
		if err == pgx.ErrNoRows {
			v, err = nil, nil
		}
		return err
	})
	if err != nil || v == nil {
		return nil, err
	}
	return decodeRecord(v)
}

func (p *pgDB) listPasswords(mailbox string) ([]Password, error) {
	ctx, cancel := op()
	defer cancel()
	var out []Password
	err := p.read(ctx, func() error {
		out = nil
		rows, _ := p.pool.Query(ctx, `SELECT mailbox, value FROM mailgate_passwords WHERE $1 = '' OR mailbox = $1`, mailbox)
		var m string
		var v []byte
		_, err := pgx.ForEachRow(rows, []any{&m, &v}, func() error {
			r, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("%s: %w", m, err)
			}
			out = append(out, r.password(m))
			return nil
		})
		return err
	})
	return out, err
}

func (p *pgDB) revokePassword(mailbox, id string) (Password, error) {
	var out Password
	err := p.inTx(func(ctx context.Context, tx pgx.Tx) error {
		var v []byte
		err := tx.QueryRow(ctx, `DELETE FROM mailgate_passwords WHERE mailbox = $1 AND id = $2 RETURNING value`,
			mailbox, id).Scan(&v)
		if err == pgx.ErrNoRows {
			return fmt.Errorf("%w: password %q of %s", ErrNotFound, id, mailbox)
		}
		if err != nil {
			return err
		}
		r, err := decodeRecord(v)
		if err != nil {
			return err
		}
		out = r.password(mailbox)
		return notify(ctx, tx, Change{Kind: PasswordRevoked, Mailbox: mailbox, PasswordID: id})
	})
	return out, err
}

// revokeAll notifies even when nothing was deleted: revoke-all means every
// session of the mailbox ends, whatever this instance's view.
func (p *pgDB) revokeAll(mailbox string) ([]Password, error) {
	var out []Password
	err := p.inTx(func(ctx context.Context, tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `DELETE FROM mailgate_passwords WHERE mailbox = $1 RETURNING value`, mailbox)
		if err != nil {
			return err
		}
		values, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			return err
		}
		for _, v := range values {
			r, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("%s: %w", mailbox, err)
			}
			out = append(out, r.password(mailbox))
		}
		return notify(ctx, tx, Change{Kind: MailboxRevoked, Mailbox: mailbox})
	})
	return out, err
}

// writeLastUsed writes a batch in one transaction: one row lock, read and
// write per password, skipping passwords revoked meanwhile.
func (p *pgDB) writeLastUsed(batch map[pwKey]LastUse) error {
	return p.inTxFor(pgFlushTimeout, func(ctx context.Context, tx pgx.Tx) error {
		for k, u := range batch {
			var v []byte
			err := tx.QueryRow(ctx, `SELECT value FROM mailgate_passwords WHERE mailbox = $1 AND id = $2 FOR UPDATE`,
				k.mailbox, k.id).Scan(&v)
			if err == pgx.ErrNoRows {
				continue
			}
			if err != nil {
				return err
			}
			if v, err = withLastUse(v, u); err != nil || v == nil {
				if err != nil {
					return err
				}
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE mailgate_passwords SET value = $3 WHERE mailbox = $1 AND id = $2`,
				k.mailbox, k.id, v); err != nil {
				return err
			}
		}
		return nil
	})
}
