package store

import "testing"

func TestLinkState(t *testing.T) {
	s, _ := newStore(t)
	check := func(step string, wantLinked bool, wantRelink string) {
		t.Helper()
		linked, relink, err := s.LinkState("microsoft", "Alice@Example.com")
		if err != nil || linked != wantLinked || relink != wantRelink {
			t.Fatalf("%s: LinkState = %v, %q, %v; want %v, %q", step, linked, relink, err, wantLinked, wantRelink)
		}
	}
	check("never linked", false, "")
	if err := s.SaveRefreshToken("microsoft", "alice@example.com", "rt1"); err != nil {
		t.Fatal(err)
	}
	check("linked", true, "")
	if err := s.MarkRelink("microsoft", "alice@example.com", "invalid_grant: AADSTS50173"); err != nil {
		t.Fatal(err)
	}
	check("marked", true, "invalid_grant: AADSTS50173")
	if err := s.SaveRefreshToken("microsoft", "alice@example.com", "rt2"); err != nil {
		t.Fatal(err)
	}
	check("linked again", true, "")
	if err := s.Unlink("alice@example.com"); err != nil {
		t.Fatal(err)
	}
	check("unlinked", false, "")
	if _, _, err := s.LinkState("", "alice@example.com"); err == nil {
		t.Fatal("empty provider: no error")
	}
}
