package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// MailboxQuery selects a page of Mailboxes.
type MailboxQuery struct {
	Contains string // substring of the address, case-insensitive; "" all
	Offset   int    // rows skipped; negative counts as 0
	Limit    int    // rows at most; 0 or negative: all from Offset
}

// MailboxPage is one page of Mailboxes.
type MailboxPage struct {
	Total int              // mailboxes matching the query, before paging
	Rows  []MailboxSummary // sorted by mailbox
}

// MailboxSummary is one mailbox that has app passwords, a refresh token or
// both.
type MailboxSummary struct {
	Mailbox     string
	Passwords   int      // number of app passwords
	LastUsed    *LastUse // the latest use of any of its passwords; nil = never
	Linked      bool     // a refresh token is stored
	NeedsRelink string   // the provider's reason when every stored token was refused; "" = fine
}

// Mailboxes lists the mailboxes that have app passwords or a refresh
// token, for the admin's table. It is built for many mailboxes: one read
// transaction walks the names of the password buckets and the token keys
// once, and only the rows of the page are read further (their passwords'
// last uses and their tokens' state). Last uses not yet flushed are
// included, so a login shows at once.
func (s *Store) Mailboxes(q MailboxQuery) (MailboxPage, error) {
	// Taken before the transaction: an entry that a Flush writes and drops
	// meanwhile is then in the snapshot or in what the transaction reads.
	pending := s.pending.snapshot()
	page, err := s.be.mailboxes(q, pending)
	if err != nil {
		return MailboxPage{}, fmt.Errorf("mailboxes: %w", err)
	}
	return page, nil
}

func (b *boltDB) mailboxes(q MailboxQuery, pending map[pwKey]LastUse) (MailboxPage, error) {
	needle := queryNeedle(q)
	var page MailboxPage
	err := b.db.View(func(tx *bolt.Tx) error {
		pw, tb := tx.Bucket(bucketPasswords), tx.Bucket(bucketTokens)
		tokens := tokenRefs(tb, needle)
		names := mergeNames(passwordMailboxes(pw, needle), tokens)
		page.Total = len(names)
		names = pageOf(names, q.Offset, q.Limit)
		page.Rows = make([]MailboxSummary, 0, len(names))
		for _, m := range names {
			row := MailboxSummary{Mailbox: m}
			if err := summarizePasswords(&row, pw.Bucket([]byte(m)), pending); err != nil {
				return err
			}
			get := func(t tokenRef) []byte { return tb.Get(tokenKey(t.provider, t.mailbox)) }
			if err := summarizeTokens(&row, get, tokensOf(tokens, m)); err != nil {
				return err
			}
			page.Rows = append(page.Rows, row)
		}
		return nil
	})
	return page, err
}

// queryNeedle is the lower-case substring of q, "" for all.
func queryNeedle(q MailboxQuery) []byte {
	return []byte(strings.ToLower(strings.TrimSpace(q.Contains)))
}

// tokenRef names one token record: tokens/<provider> NUL <mailbox>.
type tokenRef struct{ mailbox, provider string }

// passwordMailboxes returns the mailboxes with a password bucket whose
// name contains needle, in key order, which is sorted. Buckets are never
// left empty (deleteAndPrune, RevokeAll), so each has passwords.
func passwordMailboxes(root *bolt.Bucket, needle []byte) []string {
	var out []string
	c := root.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil && containsFold(k, needle) {
			out = append(out, string(k))
		}
	}
	return out
}

// tokenRefs returns the token records whose mailbox contains needle,
// sorted by mailbox then provider.
func tokenRefs(b *bolt.Bucket, needle []byte) []tokenRef {
	var out []tokenRef
	var provider string
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		p, m, ok := bytes.Cut(k, []byte{0})
		if !ok || !containsFold(m, needle) {
			continue
		}
		if string(p) != provider { // one provider is the rule: keep one string
			provider = string(p)
		}
		out = append(out, tokenRef{mailbox: string(m), provider: provider})
	}
	slices.SortFunc(out, func(a, b tokenRef) int {
		return cmpOr(strings.Compare(a.mailbox, b.mailbox), strings.Compare(a.provider, b.provider))
	})
	return out
}

// containsFold reports whether the mailbox k contains needle, which is
// lower case. Keys are canonical, so ASCII letters are lower case already;
// only a key with other bytes is folded.
func containsFold(k, needle []byte) bool {
	if len(needle) == 0 {
		return true
	}
	for _, c := range k {
		if c >= 0x80 {
			return bytes.Contains(bytes.ToLower(k), needle)
		}
	}
	return bytes.Contains(k, needle)
}

// mergeNames returns the sorted union of the mailboxes in pw (sorted,
// unique) and tokens (sorted by mailbox).
func mergeNames(pw []string, tokens []tokenRef) []string {
	out := make([]string, 0, len(pw)+len(tokens))
	i := 0
	for _, t := range tokens {
		if n := len(out); n > 0 && out[n-1] == t.mailbox {
			continue // another provider of the same mailbox
		}
		for i < len(pw) && pw[i] < t.mailbox {
			out = append(out, pw[i])
			i++
		}
		if i < len(pw) && pw[i] == t.mailbox {
			i++
		}
		out = append(out, t.mailbox)
	}
	return append(out, pw[i:]...)
}

// pageOf returns the rows of names from offset, at most limit of them
// (limit <= 0: all).
func pageOf(names []string, offset, limit int) []string {
	offset = min(max(offset, 0), len(names))
	names = names[offset:]
	if limit > 0 && limit < len(names) {
		names = names[:limit]
	}
	return names
}

// tokensOf returns the token records of mailbox in tokens.
func tokensOf(tokens []tokenRef, mailbox string) []tokenRef {
	i, _ := slices.BinarySearchFunc(tokens, mailbox, func(t tokenRef, m string) int {
		return strings.Compare(t.mailbox, m)
	})
	j := i
	for j < len(tokens) && tokens[j].mailbox == mailbox {
		j++
	}
	return tokens[i:j]
}

// summarizePasswords counts the passwords in b (nil: none) and finds the
// latest use, stored or pending.
func summarizePasswords(row *MailboxSummary, b *bolt.Bucket, pending map[pwKey]LastUse) error {
	if b == nil {
		return nil
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := summarizePassword(row, string(k), v, pending); err != nil {
			return err
		}
	}
	return nil
}

// summarizePassword counts the password id (stored value v) in row and
// keeps its use if it is the latest, stored or pending.
func summarizePassword(row *MailboxSummary, id string, v []byte, pending map[pwKey]LastUse) error {
	row.Passwords++
	lu, err := recordLastUse(v)
	if err != nil {
		return fmt.Errorf("%s: %w", row.Mailbox, err)
	}
	if u, ok := pending[pwKey{row.Mailbox, id}]; ok && (lu == nil || u.Time.After(lu.Time)) {
		lu = &u
	}
	if lu != nil && (row.LastUsed == nil || lu.Time.After(row.LastUsed.Time)) {
		row.LastUsed = lu
	}
	return nil
}

// recordLastUse decodes only the last use of a password record.
func recordLastUse(v []byte) (*LastUse, error) {
	h := recordHash(v)
	if h == nil {
		return nil, errCorrupt
	}
	var r struct {
		LastUsed *LastUse `json:"last_used"`
	}
	if err := json.Unmarshal(v[1+len(h):], &r); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	return r.LastUsed, nil
}

// summarizeTokens sets the link state from the mailbox's token records:
// fine if one of them is, else the first one's reason to re-link.
func summarizeTokens(row *MailboxSummary, get func(tokenRef) []byte, refs []tokenRef) error {
	for i, t := range refs {
		var r struct {
			NeedsRelink string `json:"needs_relink"`
		}
		if err := json.Unmarshal(get(t), &r); err != nil {
			return fmt.Errorf("corrupt token record: %w", err)
		}
		if r.NeedsRelink == "" {
			row.Linked, row.NeedsRelink = true, ""
			return nil
		}
		if i == 0 {
			row.Linked, row.NeedsRelink = true, r.NeedsRelink
		}
	}
	return nil
}
