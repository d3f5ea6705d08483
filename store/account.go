package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Account is a mailbox known to the store: it has app passwords, a linked
// refresh token, or both. A mailbox linked at two providers appears twice.
type Account struct {
	Mailbox, Provider string    // Provider "" = no token, passwords only
	Linked            time.Time // when the current grant was linked
	LastRefresh       time.Time // when the token was last saved
	NeedsRelink       string    // the provider's reason; "" = fine
	Passwords         int       // number of app passwords
}

// Unlink deletes every refresh token of mailbox (its app passwords stay).
// ErrNotFound if it had none.
func (s *Store) Unlink(mailbox string) error {
	mailbox, err := CanonicalMailbox(mailbox)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		var del [][]byte
		b.ForEach(func(k, _ []byte) error {
			if _, m, _ := strings.Cut(string(k), "\x00"); m == mailbox {
				del = append(del, slices.Clone(k))
			}
			return nil
		})
		if len(del) == 0 {
			return fmt.Errorf("%w: %s is not linked", ErrNotFound, mailbox)
		}
		for _, k := range del {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("unlink %s: %w", mailbox, err)
			}
		}
		return nil
	})
}

// Accounts lists every mailbox that has app passwords or a refresh token,
// sorted by mailbox then provider.
func (s *Store) Accounts() ([]Account, error) {
	var out []Account
	err := s.db.View(func(tx *bolt.Tx) error {
		counts, err := passwordCounts(tx)
		if err != nil {
			return err
		}
		if out, err = tokenAccounts(tx, counts); err != nil {
			return err
		}
		for m, n := range counts {
			out = append(out, Account{Mailbox: m, Passwords: n})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	slices.SortFunc(out, func(a, b Account) int {
		return cmpOr(strings.Compare(a.Mailbox, b.Mailbox), strings.Compare(a.Provider, b.Provider))
	})
	return out, nil
}

func passwordCounts(tx *bolt.Tx) (map[string]int, error) {
	counts := make(map[string]int)
	err := forEachMailbox(tx, "", func(m string, b *bolt.Bucket) error {
		if n := b.Stats().KeyN; n > 0 {
			counts[m] = n
		}
		return nil
	})
	return counts, err
}

// tokenAccounts returns one Account per token record and removes the
// mailboxes it covers from counts, so each mailbox is listed once per
// provider and passwords-only mailboxes once with Provider "".
func tokenAccounts(tx *bolt.Tx, counts map[string]int) ([]Account, error) {
	var out []Account
	seen := make(map[string]bool)
	err := tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
		var r tokenRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("corrupt token record: %w", err)
		}
		provider, mailbox, _ := strings.Cut(string(k), "\x00")
		out = append(out, Account{
			Mailbox: mailbox, Provider: provider, Linked: r.Linked,
			LastRefresh: r.LastRefresh, NeedsRelink: r.NeedsRelink, Passwords: counts[mailbox],
		})
		seen[mailbox] = true
		return nil
	})
	for m := range seen {
		delete(counts, m)
	}
	return out, err
}
