package fakeidp

import (
	"cmp"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"slices"
	"time"
)

// idTokenTTL is the lifetime of ID tokens, as Entra ID and Google issue them.
const idTokenTTL = time.Hour

// defaultAMR is the amr claim of a mailbox without SetAMR: a password and a
// second factor, as Entra ID reports a sign-in with MFA.
var defaultAMR = []string{"pwd", "mfa"}

// Issuer is the OIDC issuer: URL() unless SetIssuer changed it.
func (s *Server) Issuer() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issuerLocked()
}

func (s *Server) issuerLocked() string { return cmp.Or(s.issuer, s.URL()) }

// handleDiscovery serves the provider metadata (OpenID Connect Discovery
// 1.0 section 4).
func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.Issuer(),
		"authorization_endpoint":                s.AuthURL(),
		"token_endpoint":                        s.TokenURL(),
		"device_authorization_endpoint":         s.DeviceAuthURL(),
		"introspection_endpoint":                s.IntrospectURL(),
		"jwks_uri":                              s.JWKSURL(),
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "email", "profile", "offline_access"},
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce",
			"amr", "roles", "email", "preferred_username", "tid"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
		"prompt_values_supported":               []string{"login"},
	})
}

// JWKSURL is the key set that verifies the ID tokens (RFC 7517).
func (s *Server) JWKSURL() string { return s.URL() + "/keys" }

// handleKeys publishes the public half of the signing key (RFC 7517
// section 5, RFC 7518 section 6.3.1).
func (s *Server) handleKeys(w http.ResponseWriter, r *http.Request) {
	enc := base64.RawURLEncoding
	pub := s.key.PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": s.keyID,
		"n": enc.EncodeToString(pub.N.Bytes()),
		"e": enc.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// idToken is an ID token (OpenID Connect Core 1.0 section 2) signed with
// RS256. nonce echoes the authorization request's (section 3.1.2.1) and is
// left out when empty, as after a refresh. s.mu must be held.
func (s *Server) idToken(g *grant, nonce string) string {
	now := time.Now()
	name := cmp.Or(s.claimAs, g.mailbox)
	c := map[string]any{
		"iss": s.issuerLocked(), "sub": "sub-" + g.mailbox, "aud": cmp.Or(s.audience, g.clientID),
		"iat": now.Unix(), "exp": now.Add(idTokenTTL).Unix(),
		"auth_time": cmp.Or(g.authTime, now).Unix(),
		"amr":       defaultAMR, "email": name, "preferred_username": name,
	}
	if amr, ok := s.amr[g.mailbox]; ok {
		c["amr"] = amr
	}
	if roles, ok := s.roles[g.mailbox]; ok {
		c["roles"] = roles
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	if s.opts.TenantID != "" {
		c["tid"] = s.opts.TenantID
	}
	return s.sign(c)
}

// sign makes a JWS compact serialization with RS256 (RFC 7515 section
// 7.1, RFC 7518 section 3.3). s.mu must be held.
func (s *Server) sign(claims map[string]any) string {
	enc := base64.RawURLEncoding
	head, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": s.keyID})
	body, _ := json.Marshal(claims)
	input := enc.EncodeToString(head) + "." + enc.EncodeToString(body)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	if err != nil {
		panic("fakeidp: sign ID token: " + err.Error()) // a valid key does not fail
	}
	return input + "." + enc.EncodeToString(sig)
}

// SetIssuer makes discovery and the ID tokens issued from now on name iss
// as the issuer ("" restores URL()), for tests of an issuer mismatch.
func (s *Server) SetIssuer(iss string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issuer = iss
}

// SetIDTokenAudience makes the ID tokens issued from now on carry aud
// instead of the client ID ("" restores the client ID), for tests of a
// token meant for another client.
func (s *Server) SetIDTokenAudience(aud string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.audience = aud
}

// SetAMR sets the amr claim (RFC 8176) of mailbox's ID tokens; nil restores
// the default ["pwd", "mfa"], an empty list sends [].
func (s *Server) SetAMR(mailbox string, amr []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if amr == nil {
		delete(s.amr, canon(mailbox))
		return
	}
	s.amr[canon(mailbox)] = slices.Clone(amr)
}

// SetRoles sets the roles claim (Entra ID app roles) of mailbox's ID
// tokens; nil leaves the claim out, as by default.
func (s *Server) SetRoles(mailbox string, roles []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if roles == nil {
		delete(s.roles, canon(mailbox))
		return
	}
	s.roles[canon(mailbox)] = slices.Clone(roles)
}
