package fakeidp

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// authCode is an issued authorization code (RFC 6749 section 4.1.2).
type authCode struct {
	mailbox     string
	clientID    string
	redirectURI string
	challenge   string // S256 code challenge (RFC 7636 section 4.2)
	scope       string
	nonce       string    // echoed in the ID token (OIDC Core 3.1.2.1)
	authTime    time.Time // the sign-in the code stands for
	expires     time.Time
}

// codeTTL follows RFC 6749 section 4.1.2: codes must be short-lived,
// 10 minutes at most. A sign-in form left open expires after as long.
const codeTTL = 10 * time.Minute

// authRequest is a checked authorization request (RFC 6749 section 4.1.1,
// OIDC Core 3.1.2.1).
type authRequest struct {
	clientID, redirectURI, challenge, scope, nonce, state, loginHint string

	redirect *url.URL
	prompt   []string
	maxAge   int // seconds; -1 when absent
	expires  time.Time
}

// parseAuthRequest checks an authorization request; a non-empty message
// means it is refused.
func (s *Server) parseAuthRequest(q url.Values) (*authRequest, string) {
	redirect, err := url.Parse(q.Get("redirect_uri"))
	switch {
	case err != nil || !redirect.IsAbs():
		return nil, "bad redirect_uri"
	case q.Get("response_type") != "code":
		return nil, "unsupported response_type"
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		return nil, "PKCE with S256 required"
	case s.opts.ClientID != "" && q.Get("client_id") != s.opts.ClientID:
		return nil, "unknown client"
	}
	req := &authRequest{clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri"),
		challenge: q.Get("code_challenge"), scope: q.Get("scope"), nonce: q.Get("nonce"),
		state: q.Get("state"), loginHint: canon(q.Get("login_hint")), redirect: redirect,
		prompt: strings.Fields(q.Get("prompt")), maxAge: -1, expires: time.Now().Add(codeTTL)}
	if v := q.Get("max_age"); v != "" {
		if req.maxAge, err = strconv.Atoi(v); err != nil || req.maxAge < 0 {
			return nil, "bad max_age"
		}
	}
	return req, ""
}

// fresh reports whether a sign-in at signedIn is too old for req:
// prompt=login, max_age=0 or an older sign-in than max_age allows (OIDC
// Core 3.1.2.1) asks the user to sign in again.
func (req *authRequest) fresh(signedIn time.Time) bool {
	return slices.Contains(req.prompt, "login") ||
		(req.maxAge >= 0 && time.Since(signedIn) >= time.Duration(req.maxAge)*time.Second)
}

// handleAuthorize is the authorization endpoint. Errors are shown, not
// redirected (section 4.1.2.1 forbids redirecting to an unchecked URI).
// Without SetInteractive it plays the browser part itself: the user signs
// in as the mailbox set by SetAuthorizeUser, or else as login_hint.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	req, msg := s.parseAuthRequest(r.URL.Query())
	if msg != "" {
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	interactive, mailbox := s.interactive, s.loginAs
	s.mu.Unlock()
	if interactive {
		s.browserSignIn(w, r, req)
		return
	}
	mailbox = cmp.Or(mailbox, req.loginHint)
	if mailbox == "" {
		http.Error(w, "no user: set login_hint or SetAuthorizeUser", http.StatusBadRequest)
		return
	}
	s.redirectWithCode(w, r, req, mailbox, s.signIn(mailbox, req))
}

// signIn returns when mailbox signed in: its earlier sign-in unless req
// asks for a fresh one, as a provider's single sign-on does.
func (s *Server) signIn(mailbox string, req *authRequest) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.signIns[mailbox]
	if !ok || req.fresh(t) {
		t = time.Now()
		s.signIns[mailbox] = t
	}
	return t
}

// redirectWithCode issues a code for mailbox and sends the browser back to
// the client with it and the state (RFC 6749 section 4.1.2).
func (s *Server) redirectWithCode(w http.ResponseWriter, r *http.Request, req *authRequest, mailbox string, authTime time.Time) {
	code := randToken("ac-")
	s.mu.Lock()
	s.codes[code] = &authCode{mailbox: mailbox, clientID: req.clientID,
		redirectURI: req.redirectURI, challenge: req.challenge, scope: req.scope,
		nonce: req.nonce, authTime: authTime, expires: time.Now().Add(codeTTL)}
	s.mu.Unlock()
	back := *req.redirect
	q := back.Query()
	q.Set("code", code)
	q.Set("state", req.state)
	back.RawQuery = q.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// SetAuthorizeUser makes the authorization endpoint sign in as mailbox
// whatever login_hint says ("" restores login_hint). With SetInteractive
// it only fills in the sign-in form's mailbox field.
func (s *Server) SetAuthorizeUser(mailbox string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loginAs = canon(mailbox)
}

// AgeSignIns makes every sign-in so far d older, so that the next ID token
// without a fresh sign-in carries an auth_time d earlier.
func (s *Server) AgeSignIns(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for m, t := range s.signIns {
		s.signIns[m] = t.Add(-d)
	}
}
