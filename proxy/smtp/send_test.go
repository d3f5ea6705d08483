package smtp

import (
	"context"
	"errors"
	"slices"
	"testing"

	"mailgate/proxy"
)

// TestSend: mailgate's own mail goes through the upstream logged in as the
// sender, with a retry on a fresh token when the first is refused.
func TestSend(t *testing.T) {
	e := newEnv(t, envConfig{})
	tokens := &fakeTokens{queue: []string{"stale-token"}}
	o := &SendOptions{Tokens: tokens, Upstream: e.srv.opts.Upstream, Hostname: "mx.test"}
	msg := []byte("From: <alice@example.com>\r\nTo: <bob@example.com>\r\nSubject: hi\r\n\r\nhello\r\n")
	if err := Send(context.Background(), o, alice, "bob@example.com", msg); err != nil {
		t.Fatal(err)
	}
	got := e.deliv.all()
	if len(got) != 1 || got[0].To != "bob@example.com" || string(got[0].Data) != string(msg) {
		t.Fatalf("delivered %+v", got)
	}
	if inv := tokens.invalidations(); !slices.Equal(inv, []string{"stale-token"}) {
		t.Fatalf("invalidated %q, want the stale token", inv)
	}
	tokens.always = "bad"
	if err := Send(context.Background(), o, alice, "bob@example.com", msg); !errors.Is(err, proxy.ErrAuthFailed) {
		t.Fatalf("Send with a refused token: %v, want ErrAuthFailed", err)
	}
}
