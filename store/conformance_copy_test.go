package store

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// testCopy copies a bbolt store to PostgreSQL and back: passwords (with
// hashes and last use), tokens (sealed, shared access, relink state) come
// out the same, secrets verify and tokens open in each copy, and a target
// holding data is refused.
func testCopy(t *testing.T, e *env) {
	bo, c := testOptions(t)
	src := openT(t, bo)
	p, secret := create(t, src, "a@example.com", "phone", []string{ScopeIMAP}, c.Now().Add(time.Hour))
	src.Verify("a@example.com", secret, ScopeIMAP, "192.0.2.3") // pending: Copy flushes it
	create(t, src, "b@example.com", "x", nil, time.Time{})
	tok := Token{Refresh: refresh, Access: "at", AccessExpiry: c.Now().Add(time.Hour).UTC()}
	src.SaveToken("microsoft", "a@example.com", tok)
	src.SaveRefreshToken("google", "c@example.com", refresh)
	src.MarkRelink("google", "c@example.com", "invalid_grant")

	po, _ := e.fresh(t)
	po.KeyFile = bo.KeyFile
	pg := openT(t, po)
	stats, err := Copy(context.Background(), pg, src)
	if err != nil || stats != (CopyStats{Passwords: 2, Tokens: 2}) {
		t.Fatalf("Copy bbolt to postgres = %+v %v", stats, err)
	}
	sameContents(t, pg, src)
	if got, err := pg.Verify("a@example.com", secret, ScopeIMAP, ""); err != nil || got.ID != p.ID {
		t.Errorf("Verify in the postgres copy: %+v %v", got, err)
	}
	if got, _ := pg.LoadToken("microsoft", "a@example.com"); got != savedAt(tok, c.Now()) {
		t.Errorf("token in the postgres copy: %+v", got)
	}
	if _, err := Copy(context.Background(), pg, src); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("Copy to a non-empty postgres: %v, want ErrNotEmpty", err)
	}

	back := *bo
	back.Path = filepath.Join(t.TempDir(), "back.db")
	bb := openT(t, &back)
	if stats, err := Copy(context.Background(), bb, pg); err != nil || stats.Passwords != 2 {
		t.Fatalf("Copy postgres to bbolt = %+v %v", stats, err)
	}
	sameContents(t, bb, pg)
	if _, err := bb.Verify("a@example.com", secret, ScopeIMAP, ""); err != nil {
		t.Errorf("Verify in the bbolt copy: %v", err)
	}
	if _, err := Copy(context.Background(), bb, pg); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("Copy to a non-empty bbolt: %v, want ErrNotEmpty", err)
	}
	other, _ := e.fresh(t) // its own key file
	if _, err := Copy(context.Background(), openT(t, other), src); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("Copy between key files: %v, want ErrKeyMismatch", err)
	}
}

func sameContents(t *testing.T, a, b *Store) {
	t.Helper()
	pa, err1 := a.ListPasswords("")
	pb, err2 := b.ListPasswords("")
	if err1 != nil || err2 != nil || !reflect.DeepEqual(pa, pb) || len(pa) == 0 || pa[0].LastUsed == nil {
		t.Errorf("passwords differ:\n%+v %v\n%+v %v", pa, err1, pb, err2)
	}
	aa, err1 := a.Accounts()
	ab, err2 := b.Accounts()
	if err1 != nil || err2 != nil || !reflect.DeepEqual(aa, ab) {
		t.Errorf("accounts differ:\n%+v %v\n%+v %v", aa, err1, ab, err2)
	}
}

// savedAt is t as LoadToken returns it after a save at now.
func savedAt(t Token, now time.Time) Token {
	t.Saved = now.UTC()
	return t
}
