package store

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// tokenRecord is a sealed refresh token (and the last access token), stored
// under tokens/<provider> NUL <mailbox> (bbolt) or as the value of the
// (provider, mailbox) row (postgres), as JSON.
type tokenRecord struct {
	Provider     string    `json:"provider"`
	Mailbox      string    `json:"mailbox"`
	KeyID        string    `json:"key_id"` // which key sealed it, for rotation
	Sealed       []byte    `json:"sealed"` // nonce || XChaCha20-Poly1305 ciphertext
	Linked       time.Time `json:"linked"`
	LastRefresh  time.Time `json:"last_refresh"`
	NeedsRelink  string    `json:"needs_relink,omitempty"`
	Access       []byte    `json:"access,omitempty"` // sealed like Sealed, under accessAD
	AccessExpiry time.Time `json:"access_expiry,omitzero"`
}

// Token is what the store keeps per linked mailbox: the refresh token and,
// shared between instances, the last access token with its expiry, so that
// N instances make one refresh per expiry, not N.
type Token struct {
	Refresh      string
	Access       string    // "" = none shared
	AccessExpiry time.Time // when Access expires
	Saved        time.Time // when it was saved (LoadToken only): with AccessExpiry, the token's life
}

func tokenKey(provider, mailbox string) []byte {
	return []byte(provider + "\x00" + mailbox)
}

// tokenAD is the associated data of a sealed refresh token: it binds the
// ciphertext to its provider and mailbox, so a record copied to another
// mailbox (or provider) does not open.
func tokenAD(provider, mailbox string) []byte {
	return []byte("mailgate-token\x00" + provider + "\x00" + mailbox)
}

// accessAD is the associated data of a sealed access token: as tokenAD,
// and different from it, so an access token cannot be passed off as the
// refresh token or the other way round.
func accessAD(provider, mailbox string) []byte {
	return []byte("mailgate-access\x00" + provider + "\x00" + mailbox)
}

func (k *keys) seal(provider, mailbox, token string) []byte {
	return k.sealAD(token, tokenAD(provider, mailbox))
}

func (k *keys) sealAD(token string, ad []byte) []byte {
	nonce := make([]byte, k.token.NonceSize(), k.token.NonceSize()+len(token)+k.token.Overhead())
	rand.Read(nonce) // 24 random bytes: XChaCha's nonce is long enough for that
	return k.token.Seal(nonce, nonce, []byte(token), ad)
}

func (k *keys) open(r *tokenRecord) (string, error) {
	return k.openAD(r, r.Sealed, tokenAD(r.Provider, r.Mailbox))
}

func (k *keys) openAD(r *tokenRecord, sealed, ad []byte) (string, error) {
	if r.KeyID != k.tokenKID {
		return "", fmt.Errorf("%w: sealed with key %s, key file gives %s", ErrUnseal, r.KeyID, k.tokenKID)
	}
	ns := k.token.NonceSize()
	if len(sealed) < ns {
		return "", fmt.Errorf("%w: short record", ErrUnseal)
	}
	pt, err := k.token.Open(nil, sealed[:ns], sealed[ns:], ad)
	if err != nil {
		return "", ErrUnseal
	}
	return string(pt), nil
}

func checkTokenArgs(provider, mailbox string) (string, error) {
	if err := checkProvider(provider); err != nil {
		return "", err
	}
	return CanonicalMailbox(mailbox)
}

// LoadRefreshToken returns the refresh token of mailbox at provider, or ""
// and no error when the mailbox is not linked. A token marked for relinking
// is still returned; the caller decides.
func (s *Store) LoadRefreshToken(provider, mailbox string) (string, error) {
	t, err := s.LoadToken(provider, mailbox)
	return t.Refresh, err
}

// LoadToken returns the token of mailbox at provider: Token{} (Refresh "")
// and nil when the mailbox is not linked. A shared access token that does
// not open is left out, not an error: the caller refreshes.
func (s *Store) LoadToken(provider, mailbox string) (Token, error) {
	mailbox, err := checkTokenArgs(provider, mailbox)
	if err != nil {
		return Token{}, err
	}
	r, err := s.be.getToken(provider, mailbox)
	if err != nil || r == nil {
		return Token{}, err
	}
	refresh, err := s.keys.open(r)
	if err != nil {
		return Token{}, err
	}
	t := Token{Refresh: refresh}
	if len(r.Access) > 0 {
		if a, err := s.keys.openAD(r, r.Access, accessAD(provider, mailbox)); err == nil {
			t.Access, t.AccessExpiry, t.Saved = a, r.AccessExpiry, r.LastRefresh
		}
	}
	return t, nil
}

// SaveRefreshToken seals and stores token for (provider, mailbox). It sets
// Linked when the record is new or was marked for relinking, sets
// LastRefresh, clears NeedsRelink and the shared access token (it belongs
// to the grant being replaced).
func (s *Store) SaveRefreshToken(provider, mailbox, token string) error {
	return s.SaveToken(provider, mailbox, Token{Refresh: token})
}

// SaveToken stores t (Refresh required) as SaveRefreshToken does, and with
// it the access token to share (Access "" clears it).
func (s *Store) SaveToken(provider, mailbox string, t Token) error {
	mailbox, err := checkTokenArgs(provider, mailbox)
	if err != nil {
		return err
	}
	if t.Refresh == "" {
		return fmt.Errorf("%w: empty refresh token", ErrInvalid)
	}
	now := s.now().UTC()
	return s.updateToken(provider, mailbox, func(r *tokenRecord) error {
		if r.Linked.IsZero() || r.NeedsRelink != "" {
			r.Linked = now
		}
		r.LastRefresh, r.NeedsRelink = now, ""
		r.KeyID, r.Sealed = s.keys.tokenKID, s.keys.seal(provider, mailbox, t.Refresh)
		r.Access, r.AccessExpiry = nil, time.Time{}
		if t.Access != "" {
			r.Access, r.AccessExpiry = s.keys.sealAD(t.Access, accessAD(provider, mailbox)), t.AccessExpiry.UTC()
		}
		return nil
	}, true)
}

// errUnchanged tells updateToken that fn left the record as it was.
var errUnchanged = errors.New("unchanged")

// ForgetAccess clears the shared access token of mailbox at provider if it
// is still access (the upstream refused it), so no instance hands it out
// again; a newer one stays. Nothing linked is not an error.
func (s *Store) ForgetAccess(provider, mailbox, access string) error {
	mailbox, err := checkTokenArgs(provider, mailbox)
	if err != nil {
		return err
	}
	err = s.updateToken(provider, mailbox, func(r *tokenRecord) error {
		if len(r.Access) == 0 {
			return errUnchanged
		}
		// One that does not open is of no use to anyone: cleared too.
		if have, err := s.keys.openAD(r, r.Access, accessAD(provider, mailbox)); err == nil && have != access {
			return errUnchanged // a newer one: keep it
		}
		r.Access, r.AccessExpiry = nil, time.Time{}
		return nil
	}, false)
	if errors.Is(err, ErrNotFound) || errors.Is(err, errUnchanged) {
		return nil
	}
	return err
}

// MarkRelink keeps the token record but notes that the provider refused it
// (reason is the provider's error, e.g. "invalid_grant"), so that Accounts
// shows the mailbox needs re-linking. ErrNotFound if it was never linked.
func (s *Store) MarkRelink(provider, mailbox, reason string) error {
	mailbox, err := checkTokenArgs(provider, mailbox)
	if err != nil {
		return err
	}
	if reason == "" {
		reason = "relink required"
	}
	return s.updateToken(provider, mailbox, func(r *tokenRecord) error {
		r.NeedsRelink = reason
		return nil
	}, false)
}

// updateToken applies fn to the record of (provider, mailbox) in one write
// transaction; with create, a missing record starts empty.
func (s *Store) updateToken(provider, mailbox string, fn func(*tokenRecord) error, create bool) error {
	err := s.be.updateToken(provider, mailbox, fn, create)
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, errUnchanged) {
		return fmt.Errorf("store token: %w", err)
	}
	return err
}

// decodeToken parses a stored token record. The AD uses the record's
// location, not the fields inside it, so a record moved under another key
// fails to open even if its fields were edited to match.
func decodeToken(v []byte, provider, mailbox string) (*tokenRecord, error) {
	var r tokenRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("corrupt token record: %w", err)
	}
	r.Provider, r.Mailbox = provider, mailbox
	return &r, nil
}
