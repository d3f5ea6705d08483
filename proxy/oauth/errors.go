package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

// class sorts token endpoint failures by what they mean for the grant.
type class int

const (
	transient class = iota // retry later, keep the refresh token
	dead                   // the grant is dead: link again
	config                 // our client is refused: an admin must act
)

// deadGrant lists the RFC 6749 section 5.2 and OpenID Connect error codes
// that mean the user's grant itself is gone, so only a new link helps.
// Microsoft puts its reasons (AADSTS70043 expired by Conditional Access,
// 700082 unused for 90 days, 50173 password changed, 50076 MFA needed) in
// error_description under invalid_grant or interaction_required.
// invalid_client and unauthorized_client are not here: they mean our app
// registration is wrong (a secret expired), and marking every mailbox for
// re-linking would not fix that.
var deadGrant = map[string]bool{
	"invalid_grant":        true,
	"interaction_required": true,
	"consent_required":     true,
	"login_required":       true,
}

// classify reads a token endpoint error through *oauth2.RetrieveError.
// Anything else (connection refused, timeout, broken JSON) is transient.
func classify(err error) (class, string) {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return transient, err.Error()
	}
	code, desc := errorFields(re)
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	reason := code
	if reason == "" {
		reason = fmt.Sprintf("HTTP %d", status)
	}
	if desc != "" {
		reason += ": " + desc
	}
	switch {
	case status == http.StatusTooManyRequests || status >= 500,
		code == "temporarily_unavailable", code == "server_error":
		return transient, reason
	case deadGrant[code]:
		return dead, reason
	}
	return config, reason
}

// errorFields returns error and error_description. The jwt package leaves
// them unparsed, so they are read from the JSON body then.
func errorFields(re *oauth2.RetrieveError) (code, desc string) {
	code, desc = re.ErrorCode, re.ErrorDescription
	if code == "" {
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(re.Body, &body) == nil {
			code, desc = body.Error, body.Description
		}
	}
	// Microsoft appends trace and correlation IDs on further lines.
	desc, _, _ = strings.Cut(desc, "\n")
	return clip(strings.TrimSpace(code), maxCodeLen), clip(strings.TrimSpace(desc), maxDescLen)
}

// Bounds on the provider's error text, which goes into logs, the alert
// webhook's reason and the mail to a user whose link died (whose lines
// RFC 5322 section 2.1.1 caps at 998 characters): RFC 6749 section 5.2's
// codes are single words, Microsoft's descriptions start with the
// AADSTS code and its sentence.
const (
	maxCodeLen = 64
	maxDescLen = 300
)

// clip keeps at most n bytes of s, whole UTF-8 characters only.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// retry calls f up to maxAttempts times while it fails transiently, with
// exponential backoff inside ctx's deadline.
func (m *Manager) retry(ctx context.Context, f func() (*oauth2.Token, error)) (*oauth2.Token, error) {
	delay := m.backoff
	for attempt := 1; ; attempt++ {
		tok, err := f()
		if err == nil {
			return tok, nil
		}
		if c, _ := classify(err); c != transient || attempt == maxAttempts {
			return nil, err
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		}
		delay *= 2
	}
}

// failed turns a token endpoint error into ErrRelink (after recording it:
// MarkRelink, OnLinkState once, and the dead refresh token is not sent
// again), ErrConfig or ErrTransient. Only the delegated flow has a grant
// to re-link; an app flow's "dead grant" (a Google subject outside the
// domain, say) is the admin's to fix.
func (m *Manager) failed(key, mailbox, rt string, err error) error {
	c, reason := classify(err)
	log := m.log.With("user", mailbox, "err", reason)
	switch {
	case c == dead && rt != "" && m.relinked(mailbox, rt):
		return fmt.Errorf("%w: linked again during the refresh", ErrTransient)
	case c == dead && rt != "":
		rerr := fmt.Errorf("%w: %s", ErrRelink, reason)
		m.cache.Store(key, &entry{deadRT: rt, deadErr: rerr})
		log.Warn("oauth: provider refused the refresh token; link the mailbox again")
		m.markDead(mailbox, reason)
		return rerr
	case c == transient:
		log.Warn("oauth: token request failed, will retry later")
		return fmt.Errorf("%w: %w", ErrTransient, &reasonError{reason: reason, err: err})
	}
	log.Error("oauth: provider refused the client configuration")
	return fmt.Errorf("%w (%w): %s", ErrConfig, ErrTransient, reason)
}

// reasonError shows classify's reason in place of err's own text: the text
// of an *oauth2.RetrieveError without an OAuth error code (a 502 page from
// a gateway, a 400 without a JSON body) is the whole response body, up to
// 1 MiB, which may echo the request with its refresh token and client
// secret. The login that gets the error logs it. err stays reachable for
// errors.Is and errors.As.
type reasonError struct {
	reason string
	err    error
}

func (e *reasonError) Error() string { return e.reason }
func (e *reasonError) Unwrap() error { return e.err }

// relinked reports whether the store holds a different refresh token than
// the refused one: the mailbox was linked again while the old token was at
// the provider, and the new link must not be marked.
func (m *Manager) relinked(mailbox, rt string) bool {
	if e := m.entry(m.key(mailbox)); e != nil && e.pending.Refresh == rt {
		return false // rt is the newest; the store missed it
	}
	cur, err := m.store.LoadRefreshToken(m.ProviderName(), mailbox)
	return err == nil && cur != "" && cur != rt
}
