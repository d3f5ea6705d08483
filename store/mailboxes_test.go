package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestMailboxes(t *testing.T) {
	s, c := newStore(t)
	a1, secret := create(t, s, "ann@example.com", "phone", nil, time.Time{})
	create(t, s, "ann@example.com", "laptop", nil, time.Time{})
	create(t, s, "bob@other.org", "phone", nil, time.Time{})
	for _, m := range []string{"ann@example.com", "carl@example.com", "dora@example.com"} {
		if err := s.SaveRefreshToken("microsoft", m, "rt"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkRelink("microsoft", "dora@example.com", "the user changed their password"); err != nil {
		t.Fatal(err)
	}
	// carl is linked at two providers, one of them refused: still linked.
	if err := s.SaveRefreshToken("google", "carl@example.com", "rt"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRelink("google", "carl@example.com", "invalid_grant"); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Minute)
	if _, err := s.Verify("ann@example.com", secret, ScopeSMTP, "192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	use := LastUse{Time: c.Now().UTC(), Remote: "192.0.2.7", Proto: ScopeSMTP}

	page := mailboxes(t, s, MailboxQuery{})
	want := []MailboxSummary{
		{Mailbox: "ann@example.com", Passwords: 2, LastUsed: &use, Linked: true},
		{Mailbox: "bob@other.org", Passwords: 1},
		{Mailbox: "carl@example.com", Linked: true},
		{Mailbox: "dora@example.com", Linked: true, NeedsRelink: "the user changed their password"},
	}
	checkPage(t, page, 4, want)

	// The pending use is shown before the flush and after it alike.
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	checkPage(t, mailboxes(t, s, MailboxQuery{}), 4, want)

	checkPage(t, mailboxes(t, s, MailboxQuery{Contains: " EXAMPLE.com"}), 3, []MailboxSummary{want[0], want[2], want[3]})
	checkPage(t, mailboxes(t, s, MailboxQuery{Contains: "R", Offset: 1, Limit: 2}), 3, want[2:4])
	checkPage(t, mailboxes(t, s, MailboxQuery{Offset: 3, Limit: 5}), 4, want[3:])
	checkPage(t, mailboxes(t, s, MailboxQuery{Offset: 9}), 4, nil)
	checkPage(t, mailboxes(t, s, MailboxQuery{Offset: -1, Limit: 1}), 4, want[:1])
	checkPage(t, mailboxes(t, s, MailboxQuery{Contains: "zed"}), 0, nil)

	if _, err := s.RevokePassword("ann@example.com", a1.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlink("ann@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeAll("bob@other.org"); err != nil {
		t.Fatal(err)
	}
	got := mailboxes(t, s, MailboxQuery{Limit: 2})
	checkPage(t, got, 3, []MailboxSummary{{Mailbox: "ann@example.com", Passwords: 1}, want[2]})
}

// TestMailboxesPendingNewest: a pending use newer than the stored one
// wins, and the latest of several passwords is the mailbox's.
func TestMailboxesPendingNewest(t *testing.T) {
	s, c := newStore(t)
	_, s1 := create(t, s, "ann@example.com", "1", nil, time.Time{})
	_, s2 := create(t, s, "ann@example.com", "2", nil, time.Time{})
	s.Verify("ann@example.com", s1, ScopeIMAP, "192.0.2.1")
	s.Flush()
	c.Add(time.Hour)
	s.Verify("ann@example.com", s2, ScopeIMAP, "192.0.2.2")
	c.Add(time.Hour)
	s.Verify("ann@example.com", s1, ScopeIMAP, "192.0.2.3")
	page := mailboxes(t, s, MailboxQuery{})
	if lu := page.Rows[0].LastUsed; lu == nil || lu.Remote != "192.0.2.3" || !lu.Time.Equal(c.Now()) {
		t.Errorf("last use %+v, want the newest from 192.0.2.3", lu)
	}
}

// TestMailboxesNonASCII: the search folds case beyond ASCII too, which
// canonical mailboxes keep as typed.
func TestMailboxesNonASCII(t *testing.T) {
	s, _ := newStore(t)
	create(t, s, "Jörg@Example.com", "x", nil, time.Time{})
	create(t, s, "ÉMILE@example.com", "x", nil, time.Time{})
	for q, want := range map[string]string{"JÖRG": "jörg@example.com", "émile": "Émile@example.com"} {
		page := mailboxes(t, s, MailboxQuery{Contains: q})
		if page.Total != 1 || page.Rows[0].Mailbox != want {
			t.Errorf("%q: %+v, want %s", q, page, want)
		}
	}
}

func mailboxes(t *testing.T, s *Store, q MailboxQuery) MailboxPage {
	t.Helper()
	p, err := s.Mailboxes(q)
	if err != nil {
		t.Fatalf("Mailboxes(%+v): %v", q, err)
	}
	return p
}

func checkPage(t *testing.T, got MailboxPage, total int, want []MailboxSummary) {
	t.Helper()
	eq := func(a, b MailboxSummary) bool {
		same := (a.LastUsed == nil) == (b.LastUsed == nil)
		if same && a.LastUsed != nil {
			same = *a.LastUsed == *b.LastUsed
		}
		a.LastUsed, b.LastUsed = nil, nil
		return same && a == b
	}
	if got.Total != total || !slices.EqualFunc(got.Rows, want, eq) {
		t.Errorf("page: total %d, rows:", got.Total)
		for _, r := range got.Rows {
			t.Errorf("  %+v last %+v", r, r.LastUsed)
		}
		t.Errorf("want total %d, rows:", total)
		for _, r := range want {
			t.Errorf("  %+v last %+v", r, r.LastUsed)
		}
	}
}

// BenchmarkMailboxes lists a page of 50 at 10,000 mailboxes, each with 1
// to 3 passwords (a third of them used), half of them linked and some of
// those needing a re-link; and with a search that matches a tenth.
func BenchmarkMailboxes(b *testing.B) {
	s := manyMailboxes(b, 10000)
	for _, bc := range []struct {
		name string
		q    MailboxQuery
	}{
		{"all/first", MailboxQuery{Limit: 50}},
		{"all/last", MailboxQuery{Offset: 9950, Limit: 50}},
		{"all/500", MailboxQuery{Limit: 500}},
		{"search", MailboxQuery{Contains: "USER01", Limit: 50}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				p, err := s.Mailboxes(bc.q)
				if err != nil || p.Total == 0 || len(p.Rows) == 0 {
					b.Fatalf("%+v %v", p.Total, err)
				}
			}
		})
	}
}

// manyMailboxes fills a store with n mailboxes in one transaction (one
// CreatePassword each would cost an fsync each).
func manyMailboxes(b *testing.B, n int) *Store {
	b.Helper()
	dir := b.TempDir()
	s, err := Open(&Options{Path: dir + "/b.db", KeyFile: dir + "/b.key", FlushInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	now := time.Now().UTC()
	err = s.bdb().Update(func(tx *bolt.Tx) error {
		for i := range n {
			m := fmt.Sprintf("user%05d@example.com", i)
			pb, err := tx.Bucket(bucketPasswords).CreateBucket([]byte(m))
			if err != nil {
				return err
			}
			for j := range 1 + i%3 {
				r := &pwRecord{ID: newID(), Name: fmt.Sprint("device ", j), Scopes: []string{ScopeIMAP, ScopeSMTP},
					Created: now, Scheme: hashScheme, Hash: s.keys.hashSecret(m, newSecret())}
				if (i+j)%3 == 0 {
					r.LastUsed = &LastUse{Time: now.Add(-time.Duration(j) * time.Hour), Remote: "192.0.2.1", Proto: ScopeIMAP}
				}
				if err := putRecord(pb, r); err != nil {
					return err
				}
			}
			if i%2 == 0 {
				r := &tokenRecord{KeyID: s.keys.tokenKID, Sealed: s.keys.seal("microsoft", m, "refresh-token"),
					Linked: now, LastRefresh: now}
				if i%10 == 0 {
					r.NeedsRelink = "invalid_grant"
				}
				if err := putJSON(tx.Bucket(bucketTokens), string(tokenKey("microsoft", m)), r); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return s
}
