package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

const refresh = "0.AAAA-refresh-token-from-the-provider"

func TestRefreshTokenRoundTrip(t *testing.T) {
	o, c := testOptions(t)
	s := openT(t, o)
	if tok, err := s.LoadRefreshToken("microsoft", "a@example.com"); tok != "" || err != nil {
		t.Fatalf("not linked: %q %v", tok, err)
	}
	if err := s.SaveRefreshToken("microsoft", "A@Example.com", refresh); err != nil {
		t.Fatal(err)
	}
	if tok, err := s.LoadRefreshToken("microsoft", "a@example.com"); tok != refresh || err != nil {
		t.Fatalf("LoadRefreshToken = %q %v", tok, err)
	}
	if tok, _ := s.LoadRefreshToken("google", "a@example.com"); tok != "" {
		t.Errorf("token leaked to another provider: %q", tok)
	}
	s.Close()
	raw, _ := os.ReadFile(o.Path)
	if bytes.Contains(raw, []byte(refresh)) {
		t.Error("database holds the token in clear")
	}
	s = openT(t, o)
	c.Add(time.Hour)
	if err := s.SaveRefreshToken("microsoft", "a@example.com", refresh+"-rotated"); err != nil {
		t.Fatal(err)
	}
	if tok, _ := s.LoadRefreshToken("microsoft", "a@example.com"); tok != refresh+"-rotated" {
		t.Errorf("rotated token = %q", tok)
	}
}

func TestRefreshTokenValidation(t *testing.T) {
	s, _ := newStore(t)
	for _, tc := range []struct{ provider, mailbox, token string }{
		{"", "a@example.com", "t"},
		{"ms\x00", "a@example.com", "t"},
		{"ms", "a", "t"},
		{"ms", "a@example.com", ""},
	} {
		if err := s.SaveRefreshToken(tc.provider, tc.mailbox, tc.token); !errors.Is(err, ErrInvalid) {
			t.Errorf("Save(%q, %q, %q) = %v, want ErrInvalid", tc.provider, tc.mailbox, tc.token, err)
		}
	}
}

// TestRefreshTokenOtherKeyFile: the same database with another key file
// does not open at all (ErrKeyMismatch), whether that key file exists or
// would have to be created; nothing is created over the data.
func TestRefreshTokenOtherKeyFile(t *testing.T) {
	o, _ := testOptions(t)
	s := openT(t, o)
	if err := s.SaveRefreshToken("microsoft", "a@example.com", refresh); err != nil {
		t.Fatal(err)
	}
	s.Close()
	o.KeyFile = filepath.Join(t.TempDir(), "other.key")
	if _, err := Open(o); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("missing key file over data: %v, want ErrKeyMismatch", err)
	}
	if _, err := os.Stat(o.KeyFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a key file was created over existing data: %v", err)
	}
	if err := os.WriteFile(o.KeyFile, bytes.Repeat([]byte{7}, keyFileSize), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(o); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("other key file: %v, want ErrKeyMismatch", err)
	}
}

func TestRefreshTokenWrongKeySameID(t *testing.T) {
	// A record whose key id matches but whose ciphertext was made under
	// another key still fails authentication, not just the id check.
	s, _ := newStore(t)
	other, err := deriveKeys(bytes.Repeat([]byte{7}, keyFileSize))
	if err != nil {
		t.Fatal(err)
	}
	r := &tokenRecord{KeyID: s.keys.tokenKID, Sealed: other.seal("ms", "a@example.com", refresh)}
	r.Provider, r.Mailbox = "ms", "a@example.com"
	if _, err := s.keys.open(r); !errors.Is(err, ErrUnseal) {
		t.Errorf("open = %v, want ErrUnseal", err)
	}
}

func TestRefreshTokenMovedRecord(t *testing.T) {
	s, _ := newStore(t)
	if err := s.SaveRefreshToken("microsoft", "alice@example.com", refresh); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveRefreshToken("microsoft", "mallory@example.com", "mallory's"); err != nil {
		t.Fatal(err)
	}
	// Someone with write access to the file copies alice's record over
	// mallory's, fields and all.
	err := s.bdb().Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		v := slices.Clone(b.Get(tokenKey("microsoft", "alice@example.com")))
		if err := b.Put(tokenKey("microsoft", "mallory@example.com"), v); err != nil {
			return err
		}
		return b.Put(tokenKey("google", "alice@example.com"), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range [][2]string{{"microsoft", "mallory@example.com"}, {"google", "alice@example.com"}} {
		if tok, err := s.LoadRefreshToken(tc[0], tc[1]); !errors.Is(err, ErrUnseal) || tok != "" {
			t.Errorf("moved record %v opened: %q %v", tc, tok, err)
		}
	}
	if tok, err := s.LoadRefreshToken("microsoft", "alice@example.com"); tok != refresh || err != nil {
		t.Errorf("original: %q %v", tok, err)
	}
}

func TestRelinkAndAccounts(t *testing.T) {
	s, c := newStore(t)
	t0 := c.Now()
	if err := s.MarkRelink("microsoft", "a@example.com", "invalid_grant"); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkRelink unlinked: %v", err)
	}
	s.SaveRefreshToken("microsoft", "a@example.com", refresh)
	s.SaveRefreshToken("google", "b@example.com", refresh)
	create(t, s, "a@example.com", "1", nil, time.Time{})
	create(t, s, "a@example.com", "2", nil, time.Time{})
	create(t, s, "c@example.com", "1", nil, time.Time{})

	c.Add(time.Hour)
	if err := s.SaveRefreshToken("microsoft", "a@example.com", refresh+"2"); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Hour)
	if err := s.MarkRelink("microsoft", "a@example.com", "invalid_grant"); err != nil {
		t.Fatal(err)
	}
	want := []Account{
		{Mailbox: "a@example.com", Provider: "microsoft", Linked: t0, LastRefresh: t0.Add(time.Hour), NeedsRelink: "invalid_grant", Passwords: 2},
		{Mailbox: "b@example.com", Provider: "google", Linked: t0, LastRefresh: t0},
		{Mailbox: "c@example.com", Passwords: 1},
	}
	checkAccounts(t, s, want)
	if tok, _ := s.LoadRefreshToken("microsoft", "a@example.com"); tok != refresh+"2" {
		t.Errorf("needs-relink record lost its token: %q", tok)
	}

	// Relinking clears the mark and restarts Linked.
	c.Add(time.Hour)
	s.SaveRefreshToken("microsoft", "a@example.com", refresh+"3")
	want[0].Linked, want[0].LastRefresh, want[0].NeedsRelink = c.Now(), c.Now(), ""
	checkAccounts(t, s, want)

	if err := s.Unlink("B@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlink("b@example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Unlink twice: %v", err)
	}
	if tok, _ := s.LoadRefreshToken("google", "b@example.com"); tok != "" {
		t.Errorf("token after Unlink: %q", tok)
	}
	if err := s.Unlink("a@example.com"); err != nil {
		t.Fatal(err)
	}
	// a@ keeps its passwords and so stays listed, without a provider.
	checkAccounts(t, s, []Account{{Mailbox: "a@example.com", Passwords: 2}, want[2]})
}

func checkAccounts(t *testing.T, s *Store, want []Account) {
	t.Helper()
	got, err := s.Accounts()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, want, func(a, b Account) bool {
		return a.Mailbox == b.Mailbox && a.Provider == b.Provider && a.Linked.Equal(b.Linked) &&
			a.LastRefresh.Equal(b.LastRefresh) && a.NeedsRelink == b.NeedsRelink && a.Passwords == b.Passwords
	}) {
		t.Errorf("Accounts:\n got %+v\nwant %+v", got, want)
	}
}
