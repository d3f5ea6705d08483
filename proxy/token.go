package proxy

import (
	"context"
	"errors"
	"fmt"
)

// ErrTokenRefused is what an upstream login returns when the upstream said
// no to the token itself (IMAP NO, SMTP 5xx at AUTH). The token may have been
// revoked or have expired early (docs/clients.md), so LoginWithToken tries
// once more with a fresh one; after that the mailbox needs re-linking.
var ErrTokenRefused = fmt.Errorf("upstream refused the token: %w", ErrAuthFailed)

// errNoToken marks a login that got no token, so that it is not counted
// as the upstream's failure (Gate.UpstreamLogin).
var errNoToken = errors.New("no access token")

// LoginWithToken gets mailbox's access token from ts and calls login with
// it. When login fails with ErrTokenRefused, the token is dropped from the
// cache and login runs once more with a fresh one. Errors wrap
// ErrAuthFailed or ErrUnavailable.
func LoginWithToken[T any](ctx context.Context, ts TokenSource, mailbox string, login func(token string) (T, error)) (T, error) {
	var zero T
	for attempt := 0; ; attempt++ {
		token, err := ts.Token(ctx, mailbox)
		if err != nil {
			if !errors.Is(err, ErrAuthFailed) && !errors.Is(err, ErrUnavailable) {
				err = fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			return zero, fmt.Errorf("%w: %w", errNoToken, err)
		}
		v, err := login(token)
		if !errors.Is(err, ErrTokenRefused) {
			return v, err
		}
		ts.Invalidate(mailbox, token)
		if attempt > 0 {
			return zero, err
		}
	}
}
