package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// SignatureHeader carries "sha256=" and the lowercase hex HMAC-SHA256 of
// the raw body under the webhook secret, so the receiver knows the post
// came from this mailgate and was not changed.
const SignatureHeader = "X-Mailgate-Signature"

// Sign is the value of SignatureHeader for body.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// post delivers ev to the webhook, retrying with backoff.
func (n *Notifier) post(ev Event) {
	body, err := json.Marshal(ev)
	if err != nil { // an Event of strings always marshals
		n.log.Error("alerts: webhook body", "err", err)
		return
	}
	err = n.retry(maxAttempts, func(ctx context.Context) (bool, error) { return n.postOnce(ctx, body) })
	log := n.log.With("user", ev.Mailbox, "state", ev.State)
	if err != nil {
		log.Error("alerts: webhook not delivered", "err", err)
		return
	}
	log.Info("alerts: webhook delivered")
}

// postOnce makes one attempt. Network errors, timeouts, 5xx, 408 and 429
// are worth a retry; another 4xx means the receiver refuses this post and
// would refuse it again.
func (n *Notifier) postOnce(ctx context.Context, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.opts.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mailgate")
	req.Header.Set(SignatureHeader, Sign(n.opts.WebhookSecret, body))
	resp, err := n.opts.HTTPClient.Do(req)
	if err != nil {
		// *url.Error names the URL, and a webhook URL often carries the
		// receiver's credential (Slack, Teams: in the path; others: in
		// the query), which must not reach the log: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return true, fmt.Errorf("webhook post: %w", err)
	}
	drain(resp.Body)
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return false, nil
	case c >= 500, c == http.StatusRequestTimeout, c == http.StatusTooManyRequests:
		return true, fmt.Errorf("webhook answered %s", resp.Status)
	default:
		return false, fmt.Errorf("webhook answered %s", resp.Status)
	}
}
