package store

import (
	"errors"
	"testing"
	"time"
)

func testLinkUnlink(t *testing.T, e *env) {
	o, _ := e.fresh(t)
	s := e.open(t, o)
	if tok, err := s.LoadRefreshToken("microsoft", "a@example.com"); tok != "" || err != nil {
		t.Fatalf("not linked: %q %v", tok, err)
	}
	if err := s.SaveRefreshToken("microsoft", "A@example.com", refresh); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveRefreshToken("microsoft", "a@example.com", refresh+"-2"); err != nil {
		t.Fatal(err)
	}
	if tok, err := s.LoadRefreshToken("microsoft", "a@example.com"); tok != refresh+"-2" || err != nil {
		t.Fatalf("rotated: %q %v", tok, err)
	}
	create(t, s, "a@example.com", "x", nil, time.Time{})
	if err := s.Unlink("a@example.com"); err != nil {
		t.Fatal(err)
	}
	if tok, err := s.LoadRefreshToken("microsoft", "a@example.com"); tok != "" || err != nil {
		t.Errorf("after unlink: %q %v", tok, err)
	}
	if err := s.Unlink("a@example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second unlink: %v, want ErrNotFound", err)
	}
	if ps, _ := s.ListPasswords("a@example.com"); len(ps) != 1 {
		t.Errorf("unlink touched passwords: %+v", ps)
	}
}

func testSharedAccess(t *testing.T, e *env) {
	o, c := e.fresh(t)
	s := e.open(t, o)
	exp := c.Now().Add(time.Hour).UTC()
	if err := s.SaveToken("google", "a@example.com", Token{Access: "at"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("SaveToken without refresh: %v", err)
	}
	want := Token{Refresh: refresh, Access: "at-1", AccessExpiry: exp}
	if err := s.SaveToken("google", "a@example.com", want); err != nil {
		t.Fatal(err)
	}
	loaded := want
	loaded.Saved = c.Now().UTC() // the store's clock at the save
	if got, err := s.LoadToken("google", "a@example.com"); err != nil || got != loaded {
		t.Fatalf("LoadToken = %+v %v, want %+v", got, err, loaded)
	}
	// A refused token that is no longer the shared one leaves the newer.
	if err := s.ForgetAccess("google", "a@example.com", "at-0"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LoadToken("google", "a@example.com"); got.Access != "at-1" {
		t.Errorf("ForgetAccess of an old token cleared the new one: %+v", got)
	}
	if err := s.ForgetAccess("google", "a@example.com", "at-1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LoadToken("google", "a@example.com"); got != (Token{Refresh: refresh}) {
		t.Errorf("after ForgetAccess: %+v", got)
	}
	s.SaveToken("google", "a@example.com", want)
	if err := s.SaveRefreshToken("google", "a@example.com", refresh+"-2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LoadToken("google", "a@example.com"); got != (Token{Refresh: refresh + "-2"}) {
		t.Errorf("SaveRefreshToken kept the old access token: %+v", got)
	}
	if err := s.ForgetAccess("google", "nobody@example.com", "x"); err != nil {
		t.Errorf("ForgetAccess of an unlinked mailbox: %v", err)
	}
}

func testMarkRelink(t *testing.T, e *env) {
	o, c := e.fresh(t)
	s := e.open(t, o)
	if err := s.MarkRelink("microsoft", "a@example.com", "invalid_grant"); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkRelink unlinked: %v", err)
	}
	s.SaveRefreshToken("microsoft", "a@example.com", refresh)
	linked := c.Now().UTC()
	c.Add(time.Minute)
	if err := s.MarkRelink("microsoft", "a@example.com", "invalid_grant"); err != nil {
		t.Fatal(err)
	}
	as, err := s.Accounts()
	if err != nil || len(as) != 1 || as[0].NeedsRelink != "invalid_grant" || !as[0].Linked.Equal(linked) {
		t.Fatalf("Accounts = %+v %v", as, err)
	}
	s.SaveRefreshToken("microsoft", "a@example.com", refresh)
	if as, _ := s.Accounts(); as[0].NeedsRelink != "" || !as[0].Linked.Equal(c.Now().UTC()) {
		t.Errorf("relinked: %+v", as)
	}
}

func testMailboxesAccounts(t *testing.T, e *env) {
	o, _ := e.fresh(t)
	s := e.open(t, o)
	create(t, s, "b@example.com", "x", nil, time.Time{})
	_, sec := create(t, s, "b@example.com", "y", nil, time.Time{})
	create(t, s, "c@example.org", "x", nil, time.Time{})
	s.SaveRefreshToken("microsoft", "a@example.com", refresh)
	s.SaveRefreshToken("microsoft", "b@example.com", refresh)
	s.SaveRefreshToken("google", "b@example.com", refresh)
	s.MarkRelink("google", "b@example.com", "invalid_grant")
	s.Verify("b@example.com", sec, ScopeIMAP, "192.0.2.4")
	as, err := s.Accounts()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range as {
		got = append(got, a.Mailbox+"/"+a.Provider+"/"+a.NeedsRelink+"/"+string(rune('0'+a.Passwords)))
	}
	want := []string{"a@example.com/microsoft//0", "b@example.com/google/invalid_grant/2",
		"b@example.com/microsoft//2", "c@example.org///1"}
	if !equalStrings(got, want) {
		t.Errorf("Accounts = %v, want %v", got, want)
	}
	page := mailboxes(t, s, MailboxQuery{Contains: "EXAMPLE.COM", Offset: 1, Limit: 5})
	if page.Total != 2 || len(page.Rows) != 1 {
		t.Fatalf("Mailboxes = %+v", page)
	}
	r := page.Rows[0]
	if r.Mailbox != "b@example.com" || r.Passwords != 2 || !r.Linked || r.NeedsRelink != "" ||
		r.LastUsed == nil || r.LastUsed.Remote != "192.0.2.4" {
		t.Errorf("row = %+v", r)
	}
	if all := mailboxes(t, s, MailboxQuery{}); all.Total != 3 || all.Rows[2].Mailbox != "c@example.org" || all.Rows[0].Passwords != 0 {
		t.Errorf("all = %+v", all)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
