package fakeidp

import (
	"net/http"
	"net/url"
	"time"
)

// authCode is an issued authorization code (RFC 6749 section 4.1.2).
type authCode struct {
	mailbox     string
	clientID    string
	redirectURI string
	challenge   string // S256 code challenge (RFC 7636 section 4.2)
	scope       string
	expires     time.Time
}

// codeTTL follows RFC 6749 section 4.1.2: codes must be short-lived,
// 10 minutes at most.
const codeTTL = 10 * time.Minute

// handleAuthorize plays the browser part: the user signs in as the mailbox
// set by SetAuthorizeUser, or else as login_hint, and is sent back to
// redirect_uri with code and state. Errors are shown, not redirected
// (section 4.1.2.1 forbids redirecting to an unchecked URI).
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	switch {
	case err != nil || !redirect.IsAbs():
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	case q.Get("response_type") != "code":
		http.Error(w, "unsupported response_type", http.StatusBadRequest)
		return
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		http.Error(w, "PKCE with S256 required", http.StatusBadRequest)
		return
	case s.opts.ClientID != "" && q.Get("client_id") != s.opts.ClientID:
		http.Error(w, "unknown client", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	mailbox := s.loginAs
	s.mu.Unlock()
	if mailbox == "" {
		mailbox = canon(q.Get("login_hint"))
	}
	if mailbox == "" {
		http.Error(w, "no user: set login_hint or SetAuthorizeUser", http.StatusBadRequest)
		return
	}
	code := randToken("ac-")
	s.mu.Lock()
	s.codes[code] = &authCode{mailbox: mailbox, clientID: q.Get("client_id"),
		redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"),
		scope: q.Get("scope"), expires: time.Now().Add(codeTTL)}
	s.mu.Unlock()
	back := redirect.Query()
	back.Set("code", code)
	back.Set("state", q.Get("state"))
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// SetAuthorizeUser makes the authorization endpoint sign in as mailbox
// whatever login_hint says ("" restores login_hint).
func (s *Server) SetAuthorizeUser(mailbox string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loginAs = canon(mailbox)
}
