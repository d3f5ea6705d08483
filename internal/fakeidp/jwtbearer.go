package fakeidp

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// RegisterServiceAccount accepts JWT bearer assertions (RFC 7523) signed
// with RS256 by the private half of pub and issued by email, as Google
// accepts them from a service account.
func (s *Server) RegisterServiceAccount(email string, pub *rsa.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[email] = pub
}

// NewServiceAccount creates and registers a service account and returns
// its JSON key file in Google's format, with token_uri pointing here.
func (s *Server) NewServiceAccount(email string) ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("fakeidp: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("fakeidp: marshal key: %w", err)
	}
	s.RegisterServiceAccount(email, &key.PublicKey)
	return json.Marshal(map[string]string{
		"type": "service_account", "client_email": email, "private_key_id": "k1",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"token_uri":   s.TokenURL(),
	})
}

// assertion holds the JWT claims Google reads (RFC 7523 section 3).
type assertion struct {
	Iss   string `json:"iss"`
	Sub   string `json:"sub"`
	Aud   string `json:"aud"`
	Scope string `json:"scope"`
	Exp   int64  `json:"exp"`
}

// grantJWTBearer issues a token for the assertion's subject: the mailbox a
// service account with domain-wide delegation impersonates.
func (s *Server) grantJWTBearer(w http.ResponseWriter, r *http.Request) {
	a, err := s.verifyAssertion(r.PostForm.Get("assertion"))
	if err != nil {
		oauthError(w, http.StatusBadRequest, invalidGrant, err.Error())
		return
	}
	s.issue(w, grant{mailbox: canon(a.Sub), clientID: a.Iss, scope: a.Scope}, false, "")
}

func (s *Server) verifyAssertion(jwt string) (*assertion, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, errors.New("malformed assertion")
	}
	var head struct{ Alg string }
	var a assertion
	if err := decodePart(parts[0], &head); err != nil || head.Alg != "RS256" {
		return nil, errors.New("assertion must be RS256")
	}
	if err := decodePart(parts[1], &a); err != nil {
		return nil, errors.New("malformed claims")
	}
	s.mu.Lock()
	pub, _ := s.accounts[a.Iss].(*rsa.PublicKey)
	s.mu.Unlock()
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch {
	case pub == nil || err != nil || rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) != nil:
		return nil, errors.New("Invalid JWT Signature.")
	case a.Aud != s.TokenURL():
		return nil, errors.New("Invalid JWT: audience")
	case time.Now().Unix() > a.Exp:
		return nil, errors.New("Invalid JWT: Token must be a short-lived token")
	case a.Sub == "":
		return nil, errors.New("Invalid email or User ID")
	}
	return &a, nil
}

func decodePart(part string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
