package proxy

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzLoginServer drives the SASL LOGIN server with arbitrary responses,
// with or without an initial response. Whatever the bytes, it prompts with
// exactly Microsoft's texts, at most twice, hands the two responses to the
// authenticator unchanged, once, and refuses anything after it is done.
func FuzzLoginServer(f *testing.F) {
	f.Add(false, []byte("user"), []byte("secret"), []byte{})
	f.Add(true, []byte("user"), []byte(""), []byte("extra"))
	f.Add(true, []byte{}, []byte("\x00\xff"), []byte{0})
	f.Fuzz(func(t *testing.T, withIR bool, user, pass, extra []byte) {
		calls := 0
		var gotUser, gotPass string
		s := NewLoginServer(func(identity, u, p string) error {
			calls++
			gotUser, gotPass = u, p
			if identity != "" {
				t.Fatalf("identity %q, want empty", identity)
			}
			return nil
		})
		replies := [][]byte{user, pass}
		var resp []byte // nil: no initial response
		if withIR {
			resp, replies = append([]byte{}, user...), replies[1:] // non-nil even when empty
		}
		var prompts [][]byte
		for {
			ch, done, err := s.Next(resp)
			if done {
				if err != nil {
					t.Fatalf("done with error %v", err)
				}
				break
			}
			prompts = append(prompts, ch)
			if len(replies) == 0 {
				t.Fatalf("prompts %q: more than the client answered", prompts)
			}
			resp, replies = replies[0], replies[1:]
		}
		want := [][]byte{loginUserPrompt, loginPassPrompt}
		if withIR {
			want = want[1:]
		}
		if len(prompts) != len(want) || (len(want) == 2 && !bytes.Equal(prompts[0], want[0])) ||
			!bytes.Equal(prompts[len(prompts)-1], loginPassPrompt) {
			t.Fatalf("prompts %q, want %q", prompts, want)
		}
		if calls != 1 || gotUser != string(user) || gotPass != string(pass) {
			t.Fatalf("auth called %d times with %q, %q; want once with %q, %q", calls, gotUser, gotPass, user, pass)
		}
		if _, done, err := s.Next(extra); !done || !errors.Is(err, ErrLoginSyntax) {
			t.Fatalf("response after done: done=%v err=%v, want ErrLoginSyntax", done, err)
		}
	})
}
