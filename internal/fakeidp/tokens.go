package fakeidp

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// MailScope is the scope recorded on tokens minted without a request.
const MailScope = "https://mail.google.com/"

func canon(mailbox string) string { return strings.ToLower(strings.TrimSpace(mailbox)) }

func randToken(prefix string) string {
	b := make([]byte, 24)
	rand.Read(b) // never fails (crypto/rand documentation)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// issueLocked creates an access token and, for a delegated grant, a refresh
// token and an ID token, and returns the token response body. s.mu must be
// held.
func (s *Server) issueLocked(mailbox, clientID, scope string, delegated bool) map[string]any {
	at := randToken("at-")
	s.access[at] = &grant{mailbox: mailbox, clientID: clientID, scope: scope,
		expires: time.Now().Add(s.opts.AccessTTL)}
	resp := map[string]any{
		"access_token": at,
		"token_type":   "Bearer",
		"expires_in":   int(s.opts.AccessTTL / time.Second),
		"scope":        scope,
	}
	if !delegated {
		return resp
	}
	rt := randToken("rt-")
	s.refresh[rt] = &grant{mailbox: mailbox, clientID: clientID, scope: scope}
	resp["refresh_token"] = rt
	if !s.opts.NoIDToken {
		resp["id_token"] = s.idToken(mailbox, clientID)
	}
	return resp
}

// idToken is an unsecured JWT (RFC 7519 section 6, alg "none"): clients take
// an ID token from the token endpoint over TLS on trust (OIDC Core 3.1.3.7).
// s.mu must be held.
func (s *Server) idToken(mailbox, clientID string) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	now := time.Now().Unix()
	name := mailbox
	if s.claimAs != "" {
		name = s.claimAs
	}
	c := map[string]any{
		"iss": s.URL(), "sub": "sub-" + mailbox, "aud": clientID,
		"iat": now, "exp": now + 3600,
		"email": name, "preferred_username": name,
	}
	if s.opts.TenantID != "" {
		c["tid"] = s.opts.TenantID
	}
	claims, _ := json.Marshal(c)
	return head + "." + enc.EncodeToString(claims) + "."
}

// SetIDTokenMailbox makes the ID tokens issued from now on name mailbox in
// email and preferred_username, whoever signed in and whatever mailbox the
// tokens open ("" restores the signed-in user). An Entra ID tenant admin can
// do this for the tenant's own users: the "nOAuth" pattern.
func (s *Server) SetIDTokenMailbox(mailbox string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claimAs = canon(mailbox)
}

// MintAccessToken issues an access token for mailbox directly, without a
// grant, for tests that talk to an upstream without the proxy.
func (s *Server) MintAccessToken(mailbox string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := randToken("at-")
	s.access[at] = &grant{mailbox: canon(mailbox), scope: MailScope,
		expires: time.Now().Add(s.opts.AccessTTL)}
	return at
}

// IssueRefreshToken links mailbox without a flow and returns its refresh
// token.
func (s *Server) IssueRefreshToken(mailbox string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := randToken("rt-")
	s.refresh[rt] = &grant{mailbox: canon(mailbox), clientID: s.opts.ClientID, scope: MailScope}
	return rt
}

// RevokeRefreshTokens kills every refresh token of mailbox: the next
// refresh gets invalid_grant, as after a password change at Microsoft.
func (s *Server) RevokeRefreshTokens(mailbox string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.refresh {
		if g.mailbox == canon(mailbox) {
			g.dead = true
		}
	}
}

// ExpireAccessTokens makes every access token issued so far invalid.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.access)
}

// Valid reports whether token is a live access token and for which mailbox;
// app tokens (client credentials) report "" and are good for any mailbox.
func (s *Server) Valid(token string) (mailbox string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.access[token]
	if g == nil || time.Now().After(g.expires) {
		return "", false
	}
	return g.mailbox, true
}

// ValidFor reports whether token may open mailbox: a live delegated token
// of that mailbox or a live app token.
func (s *Server) ValidFor(token, mailbox string) bool {
	m, ok := s.Valid(token)
	return ok && (m == "" || m == canon(mailbox))
}

// handleIntrospect answers RFC 7662 section 2.2; inactive tokens get only
// {"active":false} (section 2.2: no further detail).
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	token := r.FormValue("token")
	if h, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && token == "" {
		token = h
	}
	s.mu.Lock()
	g := s.access[token]
	s.mu.Unlock()
	if g == nil || time.Now().After(g.expires) {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	resp := map[string]any{"active": true, "scope": g.scope, "client_id": g.clientID,
		"token_type": "Bearer", "exp": g.expires.Unix()}
	if g.mailbox != "" {
		resp["email"], resp["username"], resp["sub"] = g.mailbox, g.mailbox, "sub-"+g.mailbox
	}
	writeJSON(w, http.StatusOK, resp)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store") // RFC 6749 section 5.1
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// oauthError writes an RFC 6749 section 5.2 error response.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}
