package devup

import (
	"bytes"
	"errors"
	"testing"

	"mailgate/proxy"
)

func TestXOAUTH2RoundTrip(t *testing.T) {
	resp := proxy.XOAUTH2Response("a@example.com", "tok")
	if want := "user=a@example.com\x01auth=Bearer tok\x01\x01"; string(resp) != want {
		t.Fatalf("response = %q, want %q", resp, want)
	}
	u, tok, err := ParseXOAUTH2(resp)
	if err != nil || u != "a@example.com" || tok != "tok" {
		t.Fatalf("ParseXOAUTH2 = %q, %q, %v", u, tok, err)
	}
}

func TestParseXOAUTH2Malformed(t *testing.T) {
	for _, in := range []string{
		"", "\x01\x01", "user=a\x01auth=Bearer t\x01", "user=a\x01auth=Bearer t\x01\x01x",
		"user=\x01auth=Bearer t\x01\x01", "user=a\x01auth=Basic t\x01\x01", "user=a\x01auth=Bearer \x01\x01",
		"a\x01auth=Bearer t\x01\x01",
	} {
		if _, _, err := ParseXOAUTH2([]byte(in)); !errors.Is(err, ErrXOAUTH2Syntax) {
			t.Errorf("ParseXOAUTH2(%q) err = %v, want ErrXOAUTH2Syntax", in, err)
		}
	}
}

func FuzzParseXOAUTH2(f *testing.F) {
	f.Add([]byte("user=a@b\x01auth=Bearer t\x01\x01"))
	f.Fuzz(func(t *testing.T, in []byte) {
		u, tok, err := ParseXOAUTH2(in)
		if err != nil {
			return
		}
		// Whatever parses must encode back to the same bytes.
		if out := proxy.XOAUTH2Response(u, tok); !bytes.Equal(out, in) {
			t.Fatalf("round trip %q -> %q", in, out)
		}
	})
}

func TestXOAUTH2Server(t *testing.T) {
	verify := func(user, token string) error {
		if user == "a@b" && token == "good" {
			return nil
		}
		return errors.New("bad token")
	}
	s := NewXOAUTH2Server(verify)
	if _, done, err := s.Next(proxy.XOAUTH2Response("a@b", "good")); !done || err != nil {
		t.Fatalf("good token: done=%v err=%v", done, err)
	}
	// A bad token gets a JSON challenge, then fails after the empty reply.
	s = NewXOAUTH2Server(verify)
	ch, done, err := s.Next(proxy.XOAUTH2Response("a@b", "bad"))
	if done || err != nil || !bytes.HasPrefix(ch, []byte(`{"status":"401"`)) {
		t.Fatalf("bad token: challenge=%q done=%v err=%v", ch, done, err)
	}
	if _, done, err = s.Next([]byte{}); !done || err == nil {
		t.Fatalf("after challenge: done=%v err=%v, want failure", done, err)
	}
}
