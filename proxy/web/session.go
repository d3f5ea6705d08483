package web

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

// Session and sign-in lifetimes (issue 14, "Security").
const (
	sessionIdle     = 30 * time.Minute // a session unused this long ends
	sessionAbsolute = 8 * time.Hour    // and every session ends this long after sign-in
	pendingTTL      = 10 * time.Minute // a sign-in must come back from the provider within this
	freshAuth       = 10 * time.Minute // creating a password needs a sign-in this recent
	profileTTL      = 10 * time.Minute // a .mobileconfig link works this long, once
)

// Bounds on what unauthenticated clients can make the portal remember:
// every POST /auth/signin adds a pending sign-in until the provider sends
// the browser back, so a flood must not grow the map without end.
//
// One IPv6 customer usually holds a /48 (a site) and any number of /64s
// in it, so, as in proxy.Limits, a /48 has a bound of its own, higher
// than a network's: without it one /48 (a tunnel broker gives one away)
// fills maxPending from 313 of its /64s, and nobody can sign in until
// those expire.
const (
	maxPending            = 10000
	maxPendingPerNetwork  = 32
	maxPendingPerIPv6Site = 128
	maxSessions           = 100000
	maxProfiles           = 10000
)

var errTooMany = errors.New("too many sign-ins in progress")

// newToken returns 32 random bytes, base64url: session ids, states,
// nonces and profile links.
func newToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails since Go 1.24
	return base64.RawURLEncoding.EncodeToString(b)
}

// session is one signed-in browser, kept only in memory: a restart signs
// everyone out, which is the safe direction.
type session struct {
	user     User
	created  time.Time
	lastSeen time.Time
	freshAt  time.Time // when a sign-in asked with fresh=true came back
}

// authTime is when the user last authenticated at the provider: the ID
// token's auth_time or, from a provider that sends none, when a sign-in
// that asked for a new authentication (prompt=login, max_age=0) came back.
// Zero when neither is known: then creating a password asks for one.
func (ss *session) authTime() time.Time {
	if !ss.user.AuthTime.IsZero() {
		return ss.user.AuthTime
	}
	return ss.freshAt
}

// pending is a sign-in sent to the provider and not yet back.
type pending struct {
	nonce, verifier string
	returnTo        string // where the browser goes after the callback
	fresh           bool
	network         string // of the client that started it, for maxPendingPerNetwork
	site            string // its IPv6 /48, for maxPendingPerIPv6Site; "" for IPv4
	expires         time.Time
}

// profile is a .mobileconfig waiting behind its single-use link.
type profile struct {
	mailbox string // only this signed-in mailbox may fetch it
	data    []byte
	expires time.Time
}

// memory holds sessions, pending sign-ins and profiles, under one mutex:
// every operation is a map lookup, so one lock is enough.
type memory struct {
	now func() time.Time

	mu        sync.Mutex
	sessions  map[string]*session
	pending   map[string]*pending // by state
	perNet    map[string]int      // pending sign-ins per client network and IPv6 /48
	profiles  map[string]*profile // by token
	lastSweep time.Time
}

func newMemory(now func() time.Time) *memory {
	return &memory{now: now, sessions: map[string]*session{}, pending: map[string]*pending{},
		perNet: map[string]int{}, profiles: map[string]*profile{}}
}

// session returns the live session id names and marks it used; nil when
// there is none or it has expired (then it is forgotten).
func (m *memory) session(id string) *session {
	if id == "" {
		return nil
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sessions[id]
	if s == nil {
		return nil
	}
	if s.expired(now) {
		delete(m.sessions, id)
		return nil
	}
	s.lastSeen = now
	c := *s
	return &c
}

func (s *session) expired(now time.Time) bool {
	return now.Sub(s.lastSeen) >= sessionIdle || now.Sub(s.created) >= sessionAbsolute
}

// newSession starts a session for u and returns its id. A fresh id every
// time: a sign-in never reuses the id the browser had (session fixation).
func (m *memory) newSession(u User, fresh bool) (string, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	if len(m.sessions) >= maxSessions {
		return "", errTooMany
	}
	id := newToken()
	s := &session{user: u, created: now, lastSeen: now}
	if fresh {
		s.freshAt = now
	}
	m.sessions[id] = s
	return id, nil
}

// endSession forgets a session ("Sign out").
func (m *memory) endSession(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, id)
}

// addPending remembers a sign-in under a new state and returns the state.
func (m *memory) addPending(p *pending) (string, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	if len(m.pending) >= maxPending || m.perNet[p.network] >= maxPendingPerNetwork ||
		p.site != "" && m.perNet[p.site] >= maxPendingPerIPv6Site {
		return "", errTooMany
	}
	p.expires = now.Add(pendingTTL)
	state := newToken()
	m.pending[state] = p
	m.perNet[p.network]++
	if p.site != "" {
		m.perNet[p.site]++
	}
	return state, nil
}

// takePending returns and forgets the sign-in of state: a state works
// once, and only within pendingTTL.
func (m *memory) takePending(state string) *pending {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pending[state]
	if p == nil {
		return nil
	}
	m.dropPending(state, p)
	if !now.Before(p.expires) {
		return nil
	}
	return p
}

func (m *memory) dropPending(state string, p *pending) {
	delete(m.pending, state)
	for _, k := range []string{p.network, p.site} {
		if k == "" {
			continue
		}
		if m.perNet[k]--; m.perNet[k] <= 0 {
			delete(m.perNet, k)
		}
	}
}

// addProfile keeps a .mobileconfig for mailbox and returns its token.
func (m *memory) addProfile(mailbox string, data []byte) (string, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	if len(m.profiles) >= maxProfiles {
		return "", errTooMany
	}
	token := newToken()
	m.profiles[token] = &profile{mailbox: mailbox, data: data, expires: now.Add(profileTTL)}
	return token, nil
}

// takeProfile returns and forgets the profile of token if mailbox may
// have it; a wrong mailbox leaves it in place for its owner.
func (m *memory) takeProfile(token, mailbox string) []byte {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.profiles[token]
	if p == nil || p.mailbox != mailbox {
		return nil
	}
	delete(m.profiles, token)
	if !now.Before(p.expires) {
		return nil
	}
	return p.data
}

// sweep forgets what has expired, at most once a minute, so that the maps
// hold only live entries without a goroutine of their own.
func (m *memory) sweep(now time.Time) {
	if now.Sub(m.lastSweep) < time.Minute {
		return
	}
	m.lastSweep = now
	for id, s := range m.sessions {
		if s.expired(now) {
			delete(m.sessions, id)
		}
	}
	for state, p := range m.pending {
		if !now.Before(p.expires) {
			m.dropPending(state, p)
		}
	}
	for token, p := range m.profiles {
		if !now.Before(p.expires) {
			delete(m.profiles, token)
		}
	}
}
