package oauth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// DeviceCode is a pending device authorization (RFC 8628 section 3.2): the
// admin opens VerificationURI and enters UserCode. Keep it between
// StartDeviceLink and FinishDeviceLink.
type DeviceCode struct {
	VerificationURI         string
	VerificationURIComplete string // URI with the code filled in, if offered
	UserCode                string
	ExpiresIn               int // seconds
	Interval                int // seconds between polls

	resp *oauth2.DeviceAuthResponse
}

// AuthCodeLink is a pending authorization-code link: the admin opens URL,
// signs in as the mailbox and pastes the redirected URL back.
type AuthCodeLink struct {
	URL string

	verifier string // PKCE, RFC 7636 section 4.1
	state    string // CSRF protection, RFC 6749 section 10.12
}

func (m *Manager) delegated(op string) error {
	if m.cfg == nil {
		return fmt.Errorf("%w: %s needs the delegated flow", ErrUnsupported, op)
	}
	return nil
}

// StartDeviceLink asks the provider for a device code (RFC 8628 section 3.1).
// Google's device flow cannot carry the Gmail scope (docs/clients.md, "Google
// scopes, and no device flow"): use StartAuthCodeLink there.
func (m *Manager) StartDeviceLink(ctx context.Context, mailbox string) (*DeviceCode, error) {
	if err := m.delegated("device link"); err != nil {
		return nil, err
	}
	if m.provider == Google || m.cfg.Endpoint.DeviceAuthURL == "" {
		return nil, fmt.Errorf("%w: no device flow for %s", ErrUnsupported, m.provider)
	}
	resp, err := m.cfg.DeviceAuth(m.httpCtx(ctx))
	if err != nil {
		return nil, m.linkError("device authorization", err)
	}
	dc := &DeviceCode{VerificationURI: resp.VerificationURI,
		VerificationURIComplete: resp.VerificationURIComplete,
		UserCode:                resp.UserCode, Interval: int(resp.Interval), resp: resp}
	if !resp.Expiry.IsZero() {
		dc.ExpiresIn = int(time.Until(resp.Expiry) / time.Second)
	}
	return dc, nil
}

// FinishDeviceLink polls the token endpoint at the interval the provider
// asks for, slowing down on slow_down (RFC 8628 section 3.5), until the
// user approves (the mailbox is verified and its refresh token saved),
// denies (ErrDenied), the code expires (ErrExpired) or ctx ends.
func (m *Manager) FinishDeviceLink(ctx context.Context, mailbox string, dc *DeviceCode) error {
	if err := m.delegated("device link"); err != nil {
		return err
	}
	if dc == nil || dc.resp == nil {
		return errors.New("oauth: device code not from StartDeviceLink")
	}
	for {
		tok, err := m.cfg.DeviceAccessToken(m.httpCtx(ctx), dc.resp)
		switch {
		case err == nil:
			return m.finishLink(ctx, mailbox, tok)
		case ctx.Err() != nil:
			return fmt.Errorf("oauth: device link: %w", ctx.Err())
		case !dc.resp.Expiry.IsZero() && !time.Now().Before(dc.resp.Expiry):
			return fmt.Errorf("%w: device code expired", ErrExpired)
		}
		c, reason := classify(err)
		if c != transient {
			return m.linkError("device link", err)
		}
		// A blip must not lose the admin's sign-in: poll again (after one
		// interval) until the code expires.
		m.log.Warn("oauth: device poll failed, polling on", "user", mailbox, "err", reason)
	}
}

// StartAuthCodeLink returns the authorization URL for mailbox, with PKCE
// S256 (RFC 7636), a random state and login_hint.
func (m *Manager) StartAuthCodeLink(mailbox string) (*AuthCodeLink, error) {
	if err := m.delegated("auth-code link"); err != nil {
		return nil, err
	}
	if m.cfg.Endpoint.AuthURL == "" {
		return nil, fmt.Errorf("%w: no authorization URL", ErrUnsupported)
	}
	l := &AuthCodeLink{verifier: oauth2.GenerateVerifier(), state: rand.Text()}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(l.verifier),
		oauth2.SetAuthURLParam("login_hint", canonical(mailbox))}
	if m.provider == Google {
		// Google issues a refresh token only for offline access, and again
		// on a repeated link only when consent is asked again.
		opts = append(opts, oauth2.AccessTypeOffline, oauth2.ApprovalForce)
	}
	l.URL = m.cfg.AuthCodeURL(l.state, opts...)
	return l, nil
}

// FinishAuthCodeLink takes the URL the browser was redirected to, checks
// state, redeems the code with the PKCE verifier, verifies the mailbox and
// saves the refresh token.
func (m *Manager) FinishAuthCodeLink(ctx context.Context, mailbox string, l *AuthCodeLink, redirectedURL string) error {
	if err := m.delegated("auth-code link"); err != nil {
		return err
	}
	if l == nil || l.verifier == "" {
		return errors.New("oauth: link not from StartAuthCodeLink")
	}
	u, err := url.Parse(strings.TrimSpace(redirectedURL))
	if err != nil {
		return fmt.Errorf("oauth: redirected URL: %w", err)
	}
	q := u.Query()
	if e := q.Get("error"); e != "" { // RFC 6749 section 4.1.2.1
		if e == "access_denied" {
			return fmt.Errorf("%w: %s", ErrDenied, q.Get("error_description"))
		}
		return fmt.Errorf("oauth: authorization failed: %s: %s", e, q.Get("error_description"))
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(l.state)) != 1 {
		return errors.New("oauth: state mismatch: the URL is not from this link request")
	}
	if q.Get("code") == "" {
		return errors.New("oauth: redirected URL has no code")
	}
	tok, err := m.cfg.Exchange(m.httpCtx(ctx), q.Get("code"), oauth2.VerifierOption(l.verifier))
	if err != nil {
		return m.linkError("code exchange", err)
	}
	return m.finishLink(ctx, mailbox, tok)
}

// linkError maps a failed link step: access_denied and expired_token
// (RFC 8628 section 3.5) have their own errors.
func (m *Manager) linkError(step string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		switch code, _ := errorFields(re); code {
		case "access_denied":
			return fmt.Errorf("%w: %s", ErrDenied, step)
		case "expired_token":
			return fmt.Errorf("%w: %s", ErrExpired, step)
		}
	}
	c, reason := classify(err)
	if c == transient {
		return fmt.Errorf("oauth: %s: %w: %s", step, ErrTransient, reason)
	}
	return fmt.Errorf("oauth: %s: %s", step, reason)
}

// LinkToken links mailbox with tok, a token obtained elsewhere (the portal's
// sign-in): the same checks as "account link" (ID token hints, tenant, the
// upstream login with tok's access token), then the refresh token is
// sealed and stored. tok must carry a refresh token.
func (m *Manager) LinkToken(ctx context.Context, mailbox string, tok *oauth2.Token) error {
	if err := m.delegated("link"); err != nil {
		return err
	}
	if tok == nil {
		return errors.New("oauth: link: no token")
	}
	return m.finishLink(ctx, mailbox, tok)
}

// finishLink checks that tok belongs to mailbox, then saves its refresh
// token and caches its access token.
func (m *Manager) finishLink(ctx context.Context, mailbox string, tok *oauth2.Token) error {
	mailbox = canonical(mailbox)
	if tok.RefreshToken == "" {
		return errors.New("oauth: provider issued no refresh token (offline_access not granted?)")
	}
	if err := m.verifyMailbox(ctx, mailbox, tok); err != nil {
		m.log.Warn("oauth: link refused", "user", mailbox, "err", err)
		return err
	}
	if err := m.saveLink(ctx, mailbox, tok.RefreshToken); err != nil {
		return fmt.Errorf("oauth: save refresh token: %w", err)
	}
	m.put(m.key(mailbox), tok, "")
	m.log.Info("oauth: mailbox linked", "user", mailbox)
	return nil
}
