package alerts

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"mailgate/internal/proxytest"
)

// TestSign checks Sign against the example of GitHub's webhook
// documentation, which openssl reproduces:
// printf 'Hello, World!' | openssl dgst -sha256 -hmac "It's a Secret to Everybody"
func TestSign(t *testing.T) {
	got := Sign([]byte("It's a Secret to Everybody"), []byte("Hello, World!"))
	want := "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

// TestWebhookBody: the body has exactly the contract's fields, the time in
// RFC 3339 UTC, and the signature is the HMAC of the raw body.
func TestWebhookBody(t *testing.T) {
	r := newReceiver(t)
	secret := []byte("s3cret\n with a newline inside")
	at := time.Date(2026, 3, 1, 14, 34, 56, 789e6, time.FixedZone("CEST", 2*3600))
	n, _ := start(t, &Options{WebhookURL: r.URL, WebhookSecret: secret, Now: func() time.Time { return at }})
	n.Notify("alice@example.com", NeedsRelink, "invalid_grant: AADSTS50173: password changed")
	closeNow(t, n)
	posts := r.got()
	if len(posts) != 1 {
		t.Fatalf("%d posts, want 1", len(posts))
	}
	p := posts[0]
	mac := hmac.New(sha256.New, secret)
	mac.Write(p.body)
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); p.signature != want {
		t.Fatalf("signature %q, want %q", p.signature, want)
	}
	var body map[string]string
	if err := json.Unmarshal(p.body, &body); err != nil || p.ctype != "application/json" {
		t.Fatalf("body %s (%s): %v", p.body, p.ctype, err)
	}
	want := map[string]string{"mailbox": "alice@example.com", "state": "needs_relink",
		"reason": "invalid_grant: AADSTS50173: password changed", "time": "2026-03-01T12:34:56Z"}
	if len(body) != len(want) {
		t.Fatalf("body fields %v, want %v", body, want)
	}
	for k, v := range want {
		if body[k] != v {
			t.Fatalf("body[%s] = %q, want %q", k, body[k], v)
		}
	}
	if tm, err := time.Parse(time.RFC3339, body["time"]); err != nil || !tm.Equal(at.Truncate(time.Second)) {
		t.Fatalf("time %q: %v", body["time"], err)
	}
}

// TestWebhookRetries: 5xx, 429 and a dropped connection are retried with
// doubling waits until the receiver takes the post; the same body each time.
func TestWebhookRetries(t *testing.T) {
	r := newReceiver(t, 500, 503, 429)
	n, w := start(t, &Options{WebhookURL: r.URL, Backoff: time.Second})
	n.Notify("alice@example.com", Linked, "linked again")
	closeNow(t, n)
	posts := r.got()
	if len(posts) != 4 {
		t.Fatalf("%d posts, want 4 (3 failures, then success)", len(posts))
	}
	for _, p := range posts[1:] {
		if string(p.body) != string(posts[0].body) || p.signature != posts[0].signature {
			t.Fatalf("retry changed the post: %s vs %s", p.body, posts[0].body)
		}
	}
	if got, want := w.all(), []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}; !slices.Equal(got, want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
}

// TestWebhookGivesUp: a receiver that always fails gets maxAttempts posts
// with waits capped at maxBackoff, then the next change is delivered.
func TestWebhookGivesUp(t *testing.T) {
	r := newReceiver(t, slices.Repeat([]int{502}, maxAttempts)...)
	n, w := start(t, &Options{WebhookURL: r.URL, Backoff: time.Minute})
	n.Notify("alice@example.com", NeedsRelink, "invalid_grant")
	n.Notify("bob@example.com", Unlinked, "unlinked by an admin")
	closeNow(t, n)
	posts := r.got()
	if len(posts) != maxAttempts+1 {
		t.Fatalf("%d posts, want %d for alice and 1 for bob", len(posts), maxAttempts+1)
	}
	var last Event
	json.Unmarshal(posts[maxAttempts].body, &last)
	if last.Mailbox != "bob@example.com" || last.State != Unlinked {
		t.Fatalf("last post %+v, want bob's", last)
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute}
	for len(want) < maxAttempts-1 {
		want = append(want, maxBackoff)
	}
	if got := w.all(); !slices.Equal(got, want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
}

// TestWebhookRefused: a 4xx other than 408 and 429 is the receiver's
// final word, and so is a redirect, which is not followed: no retry.
func TestWebhookRefused(t *testing.T) {
	for _, status := range []int{400, 404, 302} {
		r := newReceiver(t, status, status)
		n, w := start(t, &Options{WebhookURL: r.URL})
		n.Notify("alice@example.com", NeedsRelink, "invalid_grant")
		closeNow(t, n)
		if len(r.got()) != 1 || len(w.all()) != 0 {
			t.Fatalf("HTTP %d: %d posts, %d waits; want 1 and 0", status, len(r.got()), len(w.all()))
		}
	}
}

// TestWebhookUnreachable: connection refused is retried maxAttempts times.
func TestWebhookUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	n, w := start(t, &Options{WebhookURL: "http://" + addr + "/hook"})
	n.Notify("alice@example.com", NeedsRelink, "invalid_grant")
	closeNow(t, n)
	if got := len(w.all()); got != maxAttempts-1 {
		t.Fatalf("%d waits, want %d", got, maxAttempts-1)
	}
}

// TestWebhookURLNotLogged: Slack, Teams and many receivers take their
// credential in the webhook URL's path or query, and a failed post's
// *url.Error names the URL; the log gets only the cause.
func TestWebhookURLNotLogged(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var log proxytest.LogBuffer
	n, _ := start(t, &Options{WebhookURL: "http://" + addr + "/hooks/T0001/s3cr3t-path?token=s3cr3t-query",
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	n.Notify("alice@example.com", NeedsRelink, "invalid_grant")
	closeNow(t, n)
	out := log.String()
	if !strings.Contains(out, "webhook not delivered") {
		t.Fatalf("no failure logged:\n%s", out)
	}
	if strings.Contains(out, "s3cr3t") {
		t.Fatalf("the webhook URL's secret is in the log:\n%s", out)
	}
}

// TestWebhookQueueBounded: while the receiver holds a post, Notify keeps
// returning; QueueSize changes wait and the rest are dropped.
func TestWebhookQueueBounded(t *testing.T) {
	r := newReceiver(t)
	r.hold = make(chan struct{})
	n, _ := start(t, &Options{WebhookURL: r.URL, QueueSize: 2})
	n.Notify("a@example.com", NeedsRelink, "1")
	r.waitPosts(t, 1) // the worker holds the first change
	for _, m := range []string{"b", "c", "d", "e", "f"} {
		n.Notify(m+"@example.com", NeedsRelink, "x")
	}
	close(r.hold)
	closeNow(t, n)
	var got []string
	for _, p := range r.got() {
		var ev Event
		json.Unmarshal(p.body, &ev)
		got = append(got, ev.Mailbox)
	}
	if want := []string{"a@example.com", "b@example.com", "c@example.com"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

// TestCloseAbandons: Close with an ended context stops a retrying worker
// and returns, and a change after Close is not sent.
func TestCloseAbandons(t *testing.T) {
	r := newReceiver(t, slices.Repeat([]int{500}, 100)...)
	n := New(&Options{WebhookURL: r.URL, Backoff: time.Hour, Logger: quiet()})
	n.Notify("alice@example.com", NeedsRelink, "invalid_grant")
	r.waitPosts(t, 1) // now it waits an hour to retry
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := n.Close(ctx); err == nil {
		t.Fatal("Close: no error for an ended context")
	}
	n.Notify("bob@example.com", NeedsRelink, "invalid_grant")
	if len(r.got()) != 1 {
		t.Fatalf("%d posts, want 1", len(r.got()))
	}
}
