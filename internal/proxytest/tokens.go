package proxytest

import (
	"context"
	"fmt"
	"sync"

	"mailgate/proxy"
)

// Tokens is a proxy.TokenSource for the front ends' tests: it hands out
// "tok1", "tok2", ...: a new one after each Invalidate, and Err instead
// when it is set (before the session that should see it starts).
type Tokens struct {
	Err error

	mu          sync.Mutex
	gen         int
	invalidated []string
}

var _ proxy.TokenSource = (*Tokens)(nil)

// Token returns the current token, or Err.
func (f *Tokens) Token(ctx context.Context, mailbox string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return "", f.Err
	}
	return fmt.Sprintf("tok%d", f.gen+1), nil
}

// Invalidate records token and moves on to the next one.
func (f *Tokens) Invalidate(mailbox, token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invalidated = append(f.invalidated, token)
	f.gen++
}

// Invalidations returns the tokens invalidated so far, in order.
func (f *Tokens) Invalidations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.invalidated...)
}
