package smtp

import (
	"bytes"
	"context"
	"fmt"

	"mailgate/proxy"
)

// SendOptions configure Send: the same upstream and tokens as the front
// end's.
type SendOptions struct {
	Tokens   proxy.TokenSource
	Upstream proxy.Upstream
	Hostname string // EHLO name; "" means os.Hostname
}

// Send submits msg (CRLF line ends) from from to to through the upstream,
// logged in as from with its OAuth token, as a client's session would be:
// the same EHLO, STARTTLS and token-after-prompt AUTH, one retry on a
// refused token. mailgate's own mail to users (proxy/alerts) goes this way.
func Send(ctx context.Context, o *SendOptions, from, to string, msg []byte) error {
	s := New(&Options{Tokens: o.Tokens, Upstream: o.Upstream, Hostname: o.Hostname})
	lctx, cancel := context.WithTimeout(ctx, loginTimeout)
	defer cancel()
	up, err := s.login(lctx, from)
	if err != nil {
		return fmt.Errorf("upstream login as %s: %w", from, err)
	}
	stop := context.AfterFunc(ctx, up.abort)
	defer stop()
	if err := up.c.SendMail(from, []string{to}, bytes.NewReader(msg)); err != nil {
		up.abort()
		return fmt.Errorf("submit to %s: %w", to, err)
	}
	up.quit()
	return nil
}
