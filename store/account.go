package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
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
// ErrNotFound if it had none. On postgres every instance's live sessions
// of the mailbox end (MailboxRevoked).
func (s *Store) Unlink(mailbox string) error {
	mailbox, err := CanonicalMailbox(mailbox)
	if err != nil {
		return err
	}
	return s.be.unlink(mailbox)
}

// Accounts lists every mailbox that has app passwords or a refresh token,
// sorted by mailbox then provider.
func (s *Store) Accounts() ([]Account, error) {
	out, err := s.be.accounts()
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	slices.SortFunc(out, func(a, b Account) int {
		return cmpOr(strings.Compare(a.Mailbox, b.Mailbox), strings.Compare(a.Provider, b.Provider))
	})
	return out, nil
}

// tokenAccount is the Account of one stored token record.
func tokenAccount(provider, mailbox string, v []byte, passwords int) (Account, error) {
	var r tokenRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return Account{}, fmt.Errorf("corrupt token record: %w", err)
	}
	return Account{
		Mailbox: mailbox, Provider: provider, Linked: r.Linked,
		LastRefresh: r.LastRefresh, NeedsRelink: r.NeedsRelink, Passwords: passwords,
	}, nil
}

// mergeAccounts returns the token accounts and one passwords-only Account
// per mailbox of counts that has no token, so each mailbox is listed once
// per provider and passwords-only mailboxes once with Provider "".
func mergeAccounts(tokens []Account, counts map[string]int) []Account {
	seen := make(map[string]bool)
	for _, a := range tokens {
		seen[a.Mailbox] = true
	}
	out := tokens
	for m, n := range counts {
		if !seen[m] {
			out = append(out, Account{Mailbox: m, Passwords: n})
		}
	}
	return out
}
