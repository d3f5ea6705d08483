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

// issueLocked creates an access token for g and, for a delegated grant, a
// refresh token and an ID token carrying nonce, and returns the token
// response body. s.mu must be held.
func (s *Server) issueLocked(g grant, delegated bool, nonce string) map[string]any {
	at := randToken("at-")
	access := g
	access.expires = time.Now().Add(s.opts.AccessTTL)
	s.access[at] = &access
	resp := map[string]any{
		"access_token": at,
		"token_type":   "Bearer",
		"expires_in":   int(s.opts.AccessTTL / time.Second),
		"scope":        g.scope,
	}
	if !delegated {
		return resp
	}
	if g.authTime.IsZero() {
		g.authTime = time.Now()
	}
	rt := randToken("rt-")
	refresh := g
	s.refresh[rt] = &refresh
	resp["refresh_token"] = rt
	if !s.opts.NoIDToken {
		resp["id_token"] = s.idToken(&g, nonce)
	}
	return resp
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
	s.refresh[rt] = &grant{mailbox: canon(mailbox), clientID: s.opts.ClientID, scope: MailScope,
		authTime: time.Now()}
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
