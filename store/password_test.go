package store

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func create(t *testing.T, s *Store, mailbox, name string, scopes []string, exp time.Time) (Password, string) {
	t.Helper()
	p, secret, err := s.CreatePassword(mailbox, name, scopes, exp)
	if err != nil {
		t.Fatalf("CreatePassword(%s, %s): %v", mailbox, name, err)
	}
	return p, secret
}

func TestVerify(t *testing.T) {
	s, c := newStore(t)
	const mb = "alice@example.com"
	all, secret := create(t, s, " Alice@Example.COM ", "phone", nil, time.Time{})
	_, imapOnly := create(t, s, mb, "imap only", []string{"IMAP"}, time.Time{})
	_, soon := create(t, s, mb, "short-lived", nil, c.Now().Add(time.Hour))
	revoked, gone := create(t, s, mb, "old", nil, time.Time{})
	_, other := create(t, s, "bob@example.com", "bob", nil, time.Time{})
	if _, err := s.RevokePassword(mb, revoked.ID); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Hour) // "short-lived" has now expired
	_, pop3Only := create(t, s, mb, "pop3 only", []string{"pop3"}, time.Time{})
	_, three := create(t, s, mb, "three", []string{"smtp", "pop3", "imap"}, time.Time{})
	_, allScope := create(t, s, mb, "explicit all", []string{"ALL"}, time.Time{})
	if all.Mailbox != mb || !slices.Equal(all.Scopes, []string{"all"}) {
		t.Fatalf("created %+v", all)
	}

	tests := []struct {
		name, mailbox, secret, scope string
		ok                           bool
	}{
		{"right", mb, secret, ScopeIMAP, true},
		{"right smtp", mb, secret, ScopeSMTP, true},
		{"right pop3", mb, secret, ScopePOP3, true},
		{"mailbox case and spaces", "  ALICE@example.com", secret, ScopeIMAP, true},
		{"upper-cased secret", mb, strings.ToUpper(secret), ScopeIMAP, true},
		{"scope granted", mb, imapOnly, ScopeIMAP, true},
		{"wrong", mb, strings.Repeat("a", secretLen), ScopeIMAP, false},
		{"one char off", mb, secret[:secretLen-1] + flip(secret[secretLen-1]), ScopeIMAP, false},
		{"trailing space", mb, secret + " ", ScopeIMAP, true},
		{"in groups of four", mb, groups(secret), ScopeIMAP, true},
		{"groups, upper-cased", mb, strings.ToUpper(groups(secret)), ScopeIMAP, true},
		{"tabs and double spaces", mb, "\t" + strings.ReplaceAll(groups(secret), " ", " \t ") + " ", ScopeIMAP, true},
		{"wrong in groups", mb, groups(strings.Repeat("a", secretLen)), ScopeIMAP, false},
		{"one char off in groups", mb, groups(secret[:secretLen-1] + flip(secret[secretLen-1])), ScopeIMAP, false},
		{"other white space", mb, secret[:4] + "\n" + secret[4:], ScopeIMAP, false},
		{"non-breaking space", mb, secret[:4] + "\u00a0" + secret[4:], ScopeIMAP, false},
		{"only spaces", mb, "    ", ScopeIMAP, false},
		{"prefix", mb, secret[:10], ScopeIMAP, false},
		{"empty", mb, "", ScopeIMAP, false},
		{"unknown mailbox", "carol@example.com", secret, ScopeIMAP, false},
		{"invalid mailbox", "alice", secret, ScopeIMAP, false},
		{"other mailbox's secret", mb, other, ScopeIMAP, false},
		{"expired", mb, soon, ScopeIMAP, false},
		{"revoked", mb, gone, ScopeIMAP, false},
		{"wrong scope", mb, imapOnly, ScopeSMTP, false},
		{"imap only, pop3", mb, imapOnly, ScopePOP3, false},
		{"pop3 only, pop3", mb, pop3Only, ScopePOP3, true},
		{"pop3 only, imap", mb, pop3Only, ScopeIMAP, false},
		{"pop3 only, smtp", mb, pop3Only, ScopeSMTP, false},
		{"three named, imap", mb, three, ScopeIMAP, true},
		{"three named, pop3", mb, three, ScopePOP3, true},
		{"three named, smtp", mb, three, ScopeSMTP, true},
		{"explicit all, imap", mb, allScope, ScopeIMAP, true},
		{"explicit all, pop3", mb, allScope, ScopePOP3, true},
		{"explicit all, smtp", mb, allScope, ScopeSMTP, true},
		{"unknown scope", mb, secret, "nntp", false},
		{"all is not a protocol", mb, secret, ScopeAll, false},
		{"empty scope", mb, secret, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.Verify(tc.mailbox, tc.secret, tc.scope, "192.0.2.1")
			if tc.ok {
				if err != nil || p.Mailbox != mb {
					t.Fatalf("Verify = %+v, %v; want success", p, err)
				}
				return
			}
			// The very same value, not merely wrapping it: no failure kind
			// is distinguishable.
			if err != ErrAuthFailed || p.ID != "" {
				t.Fatalf("Verify = %+v, %v; want ErrAuthFailed", p, err)
			}
		})
	}
}

// groups writes secret in groups of four separated by spaces, as the
// portal shows it.
func groups(secret string) string {
	var parts []string
	for len(secret) > 4 {
		parts, secret = append(parts, secret[:4]), secret[4:]
	}
	return strings.Join(append(parts, secret), " ")
}

// TestSecretHashUnchanged: normalising drops spaces and tabs but leaves a
// secret typed as issued alone, so the hashes stored before still match.
func TestSecretHashUnchanged(t *testing.T) {
	s, _ := newStore(t)
	p, secret := create(t, s, "a@example.com", "x", nil, time.Time{})
	if got := normalizeSecret(secret); got != secret {
		t.Fatalf("normalizeSecret(%q) = %q", secret, got)
	}
	var stored []byte
	s.bdb().View(func(tx *bolt.Tx) error {
		stored = recordHash(tx.Bucket(bucketPasswords).Bucket([]byte("a@example.com")).Get([]byte(p.ID)))
		return nil
	})
	// The scheme as written before spaces were dropped: HMAC of
	// mailbox NUL lower-cased secret.
	m := hmac.New(sha256.New, s.keys.pwMAC)
	m.Write([]byte("a@example.com\x00" + strings.ToLower(strings.ToUpper(secret))))
	if !bytes.Equal(stored, m.Sum(nil)) {
		t.Error("stored hash is not HMAC(mailbox NUL secret)")
	}
	if got := s.keys.hashSecret("a@example.com", normalizeSecret(groups(secret))); !bytes.Equal(got, stored) {
		t.Error("the grouped secret hashes differently")
	}
}

func flip(b byte) string {
	if b == 'a' {
		return "b"
	}
	return "a"
}

func TestExpiresAtBoundary(t *testing.T) {
	s, c := newStore(t)
	exp := c.Now().Add(time.Minute)
	_, secret := create(t, s, "a@example.com", "x", nil, exp)
	c.Add(time.Minute - time.Nanosecond)
	if _, err := s.Verify("a@example.com", secret, ScopeIMAP, ""); err != nil {
		t.Errorf("just before expiry: %v", err)
	}
	c.Add(time.Nanosecond)
	if _, err := s.Verify("a@example.com", secret, ScopeIMAP, ""); err != ErrAuthFailed {
		t.Errorf("at expiry: %v", err)
	}
}

func TestCreateValidation(t *testing.T) {
	s, c := newStore(t)
	long := strings.Repeat("é", maxNameLen)
	tests := []struct {
		mailbox, name string
		scopes        []string
		exp           time.Time
		want          error
	}{
		{"a@example.com", long, nil, time.Time{}, nil},
		{"a@example.com", long + "x", nil, time.Time{}, ErrInvalid},
		{"", "n", nil, time.Time{}, ErrInvalid},
		{"example.com", "n", nil, time.Time{}, ErrInvalid},
		{"a@b@example.com", "n", nil, time.Time{}, ErrInvalid},
		{"@example.com", "n", nil, time.Time{}, ErrInvalid},
		{"a@", "n", nil, time.Time{}, ErrInvalid},
		{"a b@example.com", "n", nil, time.Time{}, ErrInvalid},
		{"a\x00@example.com", "n", nil, time.Time{}, ErrInvalid},
		{"a\t@example.com", "n", nil, time.Time{}, ErrInvalid},
		{"a@example.com", "", nil, time.Time{}, ErrInvalid},
		{"a@example.com", "   ", nil, time.Time{}, ErrInvalid},
		{"a@example.com", "bad\nname", nil, time.Time{}, ErrInvalid},
		{"a@example.com", "bad\xffname", nil, time.Time{}, ErrInvalid},
		{"a@example.com", "n1", []string{"imap", "nntp"}, time.Time{}, ErrInvalid},
		{"a@example.com", "n2", []string{""}, time.Time{}, ErrInvalid},
		{"a@example.com", "n3", []string{"smtp", "SMTP"}, time.Time{}, nil},
		{"a@example.com", "n4", nil, c.Now(), ErrInvalid},
		{"a@example.com", "n5", nil, c.Now().Add(time.Second), nil},
	}
	for _, tc := range tests {
		_, secret, err := s.CreatePassword(tc.mailbox, tc.name, tc.scopes, tc.exp)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("CreatePassword(%q, %q, %q): %v, want %v", tc.mailbox, tc.name, tc.scopes, err, tc.want)
		}
		if err != nil && secret != "" {
			t.Errorf("secret returned with error")
		}
	}
	ps, _ := s.ListPasswords("a@example.com")
	i := slices.IndexFunc(ps, func(p Password) bool { return p.Name == "n3" })
	if len(ps) != 3 || i < 0 || !slices.Equal(ps[i].Scopes, []string{"smtp"}) {
		t.Errorf("stored %+v", ps)
	}
}

func TestMaxPasswordsAndDuplicates(t *testing.T) {
	o, _ := testOptions(t)
	o.MaxPasswords = 3
	s := openT(t, o)
	for i := range 3 {
		create(t, s, "a@example.com", fmt.Sprintf("device %d", i), nil, time.Time{})
	}
	if _, _, err := s.CreatePassword("a@example.com", "one more", nil, time.Time{}); !errors.Is(err, ErrTooManyPasswords) {
		t.Errorf("over the limit: %v", err)
	}
	create(t, s, "b@example.com", "device 0", nil, time.Time{}) // names are per mailbox
	if _, _, err := s.CreatePassword("b@example.com", " DEVICE 0 ", nil, time.Time{}); !errors.Is(err, ErrDuplicateName) {
		t.Errorf("duplicate name: %v", err)
	}
}

func TestListAndRevoke(t *testing.T) {
	s, c := newStore(t)
	b1, _ := create(t, s, "b@example.com", "1", nil, time.Time{})
	c.Add(time.Second)
	a1, _ := create(t, s, "a@example.com", "1", nil, time.Time{})
	c.Add(time.Second)
	b2, _ := create(t, s, "b@example.com", "2", []string{"smtp"}, c.Now().Add(time.Hour))
	ps, err := s.ListPasswords("")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ps); !slices.Equal(got, []string{a1.ID, b1.ID, b2.ID}) {
		t.Errorf("ListPasswords order %v", got)
	}
	if ps[2].Name != "2" || !ps[2].Expires.Equal(b2.Expires) || ps[2].LastUsed != nil {
		t.Errorf("listed %+v, created %+v", ps[2], b2)
	}
	if _, err := s.RevokePassword("a@example.com", b1.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke another mailbox's id: %v", err)
	}
	got, err := s.RevokePassword("B@example.com", strings.ToUpper(b1.ID))
	if err != nil || got.ID != b1.ID {
		t.Fatalf("RevokePassword: %+v %v", got, err)
	}
	if _, err := s.RevokePassword("b@example.com", b1.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke twice: %v", err)
	}
	ps, _ = s.ListPasswords("b@example.com")
	if got := ids(ps); !slices.Equal(got, []string{b2.ID}) {
		t.Errorf("after revoke %v", got)
	}
}

func TestRevokeAll(t *testing.T) {
	s, c := newStore(t)
	p1, s1 := create(t, s, "a@example.com", "1", nil, time.Time{})
	c.Add(time.Second)
	p2, _ := create(t, s, "a@example.com", "2", nil, time.Time{})
	_, keep := create(t, s, "b@example.com", "1", nil, time.Time{})
	gone, err := s.RevokeAll("A@example.com")
	if err != nil || !slices.Equal(ids(gone), []string{p1.ID, p2.ID}) {
		t.Fatalf("RevokeAll: %v %v", ids(gone), err)
	}
	if _, err := s.Verify("a@example.com", s1, ScopeIMAP, ""); err != ErrAuthFailed {
		t.Errorf("revoked password verifies: %v", err)
	}
	if _, err := s.Verify("b@example.com", keep, ScopeIMAP, ""); err != nil {
		t.Errorf("other mailbox lost its password: %v", err)
	}
	if gone, err := s.RevokeAll("a@example.com"); err != nil || len(gone) != 0 {
		t.Errorf("RevokeAll again: %v %v", gone, err)
	}
	if _, err := s.RevokeAll(""); !errors.Is(err, ErrInvalid) {
		t.Errorf("RevokeAll(\"\"): %v", err)
	}
}

func ids(ps []Password) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func TestSecretProperties(t *testing.T) {
	s, _ := newStore(t)
	seen := make(map[string]bool)
	counts := make(map[rune]int)
	const n = 2000
	for i := range n {
		secret := newSecret()
		if i < 5 {
			_, secret = create(t, s, "a@example.com", fmt.Sprint(i), nil, time.Time{})
		}
		if len(secret) != secretLen {
			t.Fatalf("secret %q has length %d", secret, len(secret))
		}
		for _, r := range secret {
			if !strings.ContainsRune(secretAlphabet, r) {
				t.Fatalf("secret %q has %q outside [a-z0-9]", secret, r)
			}
			counts[r]++
		}
		if seen[secret] {
			t.Fatalf("secret %q repeated", secret)
		}
		seen[secret] = true
	}
	// Every one of the 36 characters occurs: 52000 draws make a missing
	// one practically impossible unless the sampler is broken.
	if len(counts) != len(secretAlphabet) {
		t.Errorf("only %d distinct characters used", len(counts))
	}
	id := newID()
	if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Errorf("id %q is not 16 hex digits", id)
	}
}

func TestSecretNotStored(t *testing.T) {
	o, _ := testOptions(t)
	s := openT(t, o)
	p, secret := create(t, s, "a@example.com", "laptop", nil, time.Time{})
	s.Close()
	raw, err := os.ReadFile(o.Path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) {
		t.Fatal("database file contains the secret")
	}
	s = openT(t, o)
	s.bdb().View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPasswords).Bucket([]byte("a@example.com")).Get([]byte(p.ID))
		r, err := decodeRecord(v)
		if err != nil {
			t.Fatal(err)
		}
		if r.Scheme != "hmac-sha256-v1" || !bytes.Equal(r.Hash, s.keys.hashSecret("a@example.com", secret)) {
			t.Errorf("stored scheme %q hash %x", r.Scheme, r.Hash)
		}
		return nil
	})
}

// TestCreateScopes: no scope and "all" store ScopeAll; named protocols,
// even all three, are stored as named, sorted and without duplicates.
func TestCreateScopes(t *testing.T) {
	s, _ := newStore(t)
	tests := []struct {
		in, want []string
	}{
		{nil, []string{"all"}},
		{[]string{}, []string{"all"}},
		{[]string{"all"}, []string{"all"}},
		{[]string{" All "}, []string{"all"}},
		{[]string{"imap", "all"}, []string{"all"}},
		{[]string{"pop3"}, []string{"pop3"}},
		{[]string{"POP3", "imap"}, []string{"imap", "pop3"}},
		{[]string{"smtp", "pop3", "imap", "smtp"}, []string{"imap", "pop3", "smtp"}},
	}
	for i, tc := range tests {
		p, _ := create(t, s, "a@example.com", fmt.Sprint("device ", i), tc.in, time.Time{})
		if !slices.Equal(p.Scopes, tc.want) {
			t.Errorf("CreatePassword(%q): scopes %q, want %q", tc.in, p.Scopes, tc.want)
		}
	}
	ps, _ := s.ListPasswords("a@example.com")
	for _, p := range ps {
		var i int
		fmt.Sscanf(p.Name, "device %d", &i)
		if !slices.Equal(p.Scopes, tests[i].want) {
			t.Errorf("listed %q: scopes %q, want %q", p.Name, p.Scopes, tests[i].want)
		}
	}
}
