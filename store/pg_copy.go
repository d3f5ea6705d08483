package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

func (p *pgDB) dump(ctx context.Context) (*dumpData, error) {
	d := &dumpData{}
	err := pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			var err error
			if d.passwords, err = rawRows(ctx, tx, `SELECT mailbox, id, value FROM mailgate_passwords`); err != nil {
				return err
			}
			d.tokens, err = rawRows(ctx, tx, `SELECT provider, mailbox, value FROM mailgate_tokens`)
			return err
		})
	return d, pgError(err)
}

func rawRows(ctx context.Context, tx pgx.Tx, sql string) ([]rawRecord, error) {
	rows, _ := tx.Query(ctx, sql)
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (rawRecord, error) {
		var r rawRecord
		err := row.Scan(&r.k1, &r.k2, &r.value)
		return r, err
	})
}

// restore locks both tables against writers for the check and the copy,
// so a daemon starting on the target meanwhile cannot slip data in.
func (p *pgDB) restore(ctx context.Context, d *dumpData) error {
	return pgError(pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE mailgate_passwords, mailgate_tokens IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		var used bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mailgate_passwords) OR EXISTS (SELECT 1 FROM mailgate_tokens)`).Scan(&used)
		if err != nil {
			return err
		}
		if used {
			return ErrNotEmpty
		}
		if err := copyRows(ctx, tx, "mailgate_passwords", []string{"mailbox", "id", "value"}, d.passwords); err != nil {
			return err
		}
		return copyRows(ctx, tx, "mailgate_tokens", []string{"provider", "mailbox", "value"}, d.tokens)
	}))
}

func copyRows(ctx context.Context, tx pgx.Tx, table string, cols []string, recs []rawRecord) error {
	_, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromSlice(len(recs), func(i int) ([]any, error) {
		return []any{recs[i].k1, recs[i].k2, recs[i].value}, nil
	}))
	return err
}
