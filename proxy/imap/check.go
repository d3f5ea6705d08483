package imap

import (
	"context"
	"time"

	"mailgate/proxy"
)

// checkLogoutTimeout bounds the polite LOGOUT after a successful check; the
// answer does not change the result.
const checkLogoutTimeout = 5 * time.Second

// CheckLogin logs in to the upstream as mailbox with token, exactly as a proxied
// session would (including the mailbox probe of docs/clients.md, "Authenticated
// but not connected"), and logs out again. Every new link is proven with it
// before its refresh token is stored: ID token claims are only a hint, and
// only that mailbox's own grant opens the mailbox. The error
// wraps proxy.ErrAuthFailed when the upstream refuses the token or the mailbox,
// and proxy.ErrUnavailable when the upstream cannot be reached or misbehaves.
func CheckLogin(ctx context.Context, up proxy.Upstream, mailbox, token string) error {
	c, err := loginUpstream(ctx, &up, mailbox, token)
	if err != nil {
		return err
	}
	defer c.nc.Close()
	c.nc.SetDeadline(time.Now().Add(checkLogoutTimeout))
	c.command("LOGOUT") // RFC 3501 section 6.1.3; the login already succeeded
	return nil
}
