package proxy

import (
	"errors"
	"testing"
)

func TestLoginServer(t *testing.T) {
	var gotUser, gotPass string
	auth := func(identity, user, pass string) error {
		gotUser, gotPass = user, pass
		if pass != "secret" {
			return errors.New("no")
		}
		return nil
	}
	tests := []struct {
		name    string
		ir      []byte
		replies [][]byte
		prompts []string
		wantErr bool
	}{
		{"prompted", nil, [][]byte{[]byte("u"), []byte("secret")}, []string{"Username:", "Password:"}, false},
		{"inline user", []byte("u"), [][]byte{[]byte("secret")}, []string{"Password:"}, false},
		{"wrong password", nil, [][]byte{[]byte("u"), []byte("x")}, []string{"Username:", "Password:"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewLoginServer(auth)
			resp := tt.ir
			var prompts []string
			for i := 0; ; i++ {
				ch, done, err := s.Next(resp)
				if done {
					if (err != nil) != tt.wantErr {
						t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
					}
					break
				}
				prompts = append(prompts, string(ch))
				if i >= len(tt.replies) {
					t.Fatalf("more prompts than replies: %q", prompts)
				}
				resp = tt.replies[i]
			}
			if len(prompts) != len(tt.prompts) || gotUser != "u" {
				t.Fatalf("prompts = %q user = %q, want %q, u", prompts, gotUser, tt.prompts)
			}
			for i := range prompts {
				if prompts[i] != tt.prompts[i] {
					t.Fatalf("prompt %d = %q, want %q", i, prompts[i], tt.prompts[i])
				}
			}
			_ = gotPass
		})
	}
}
