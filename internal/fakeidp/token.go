package fakeidp

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"time"
)

// Grant types of RFC 6749 section 4, RFC 8628 section 3.4 and RFC 7523.
const (
	grantDevice   = "urn:ietf:params:oauth:grant-type:device_code"
	grantCode     = "authorization_code"
	grantRefresh  = "refresh_token"
	grantClient   = "client_credentials"
	grantJWT      = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	invalidGrant  = "invalid_grant"
	invalidClient = "invalid_client"
)

// handleToken is the token endpoint (RFC 6749 section 3.2).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if !s.gate(w, r) {
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	gt := r.PostForm.Get("grant_type")
	if gt == grantJWT { // the signed assertion is the client's credential
		s.grantJWTBearer(w, r)
		return
	}
	clientID, ok := s.authClient(w, r, gt == grantClient)
	if !ok {
		return
	}
	switch gt {
	case grantDevice:
		s.grantDeviceCode(w, r, clientID)
	case grantCode:
		s.grantAuthCode(w, r, clientID)
	case grantRefresh:
		s.grantRefreshToken(w, r, clientID)
	case grantClient:
		s.grantClientCredentials(w, r, clientID)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", gt)
	}
}

// authClient checks client authentication (RFC 6749 section 2.3.1: HTTP
// Basic or form parameters). Public clients send only client_id.
func (s *Server) authClient(w http.ResponseWriter, r *http.Request, needSecret bool) (string, bool) {
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	bad := s.opts.ClientID != "" && id != s.opts.ClientID
	if secret != "" || (needSecret && s.opts.ClientSecret != "") {
		bad = bad || subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret)) != 1
	}
	if bad {
		oauthError(w, http.StatusUnauthorized, invalidClient, "unknown client or wrong secret")
		return "", false
	}
	return id, true
}

func (s *Server) issue(w http.ResponseWriter, g grant, delegated bool, nonce string) {
	s.mu.Lock()
	resp := s.issueLocked(g, delegated, nonce)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

// grantRefreshToken rotates: the presented refresh token dies and a new one
// is issued, as Microsoft does (RFC 9700 section 4.14.2).
func (s *Server) grantRefreshToken(w http.ResponseWriter, r *http.Request, clientID string) {
	rt := r.PostForm.Get("refresh_token")
	s.mu.Lock()
	g := s.refresh[rt]
	if g != nil {
		s.refreshes[g.mailbox]++
	}
	if g == nil || g.dead || (g.clientID != "" && g.clientID != clientID) {
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, invalidGrant,
			"AADSTS70000: The provided grant is invalid or has been revoked.")
		return
	}
	g.dead = true
	next := *g
	next.clientID, next.dead = clientID, false
	resp := s.issueLocked(next, true, "") // no nonce after a refresh (OIDC Core 12.2)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

// grantClientCredentials issues an app token, good for any mailbox like
// Microsoft's app-only tokens with mailbox permissions.
func (s *Server) grantClientCredentials(w http.ResponseWriter, r *http.Request, clientID string) {
	s.issue(w, grant{clientID: clientID, scope: r.PostForm.Get("scope")}, false, "")
}

// grantAuthCode redeems a code once, checking redirect_uri (RFC 6749
// section 4.1.3) and the PKCE verifier (RFC 7636 section 4.6).
func (s *Server) grantAuthCode(w http.ResponseWriter, r *http.Request, clientID string) {
	s.mu.Lock()
	c := s.codes[r.PostForm.Get("code")]
	delete(s.codes, r.PostForm.Get("code"))
	s.mu.Unlock()
	if c == nil || time.Now().After(c.expires) {
		oauthError(w, http.StatusBadRequest, invalidGrant, "unknown, used or expired code")
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	switch {
	case subtle.ConstantTimeCompare([]byte(challenge), []byte(c.challenge)) != 1:
		oauthError(w, http.StatusBadRequest, invalidGrant, "PKCE verification failed")
	case c.redirectURI != r.PostForm.Get("redirect_uri") || c.clientID != clientID:
		oauthError(w, http.StatusBadRequest, invalidGrant, "redirect_uri or client mismatch")
	default:
		s.issue(w, grant{mailbox: c.mailbox, clientID: clientID, scope: c.scope,
			authTime: c.authTime}, true, c.nonce)
	}
}
