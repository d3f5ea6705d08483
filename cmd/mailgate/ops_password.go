package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"mailgate/proxy"
	"mailgate/store"
)

// passwordJSON is the public form of an app password: never its secret or
// hash. The field names are a contract for scripts (-json).
type passwordJSON struct {
	ID       string       `json:"id"`
	Mailbox  string       `json:"mailbox"`
	Name     string       `json:"name"`
	Scopes   []string     `json:"scopes"`
	Created  time.Time    `json:"created"`
	Expires  *time.Time   `json:"expires"`
	LastUsed *lastUseJSON `json:"last_used"`
	Password string       `json:"password,omitempty"` // only from create
}

type lastUseJSON struct {
	Time   time.Time `json:"time"`
	Remote string    `json:"remote"`
	Proto  string    `json:"proto"`
}

func toPasswordJSON(p store.Password) passwordJSON {
	out := passwordJSON{ID: p.ID, Mailbox: p.Mailbox, Name: p.Name, Scopes: p.Scopes, Created: p.Created}
	if !p.Expires.IsZero() {
		out.Expires = &p.Expires
	}
	if p.LastUsed != nil {
		out.LastUsed = &lastUseJSON{Time: p.LastUsed.Time, Remote: p.LastUsed.Remote, Proto: p.LastUsed.Proto}
	}
	return out
}

// createArgs are the arguments of password.create.
type createArgs struct {
	Mailbox string    `json:"mailbox"`
	Name    string    `json:"name"`
	Scopes  []string  `json:"scopes"`
	Expires time.Time `json:"expires"`
}

// createResult is what password.create returns: the password once, and the
// settings the user must enter.
type createResult struct {
	passwordJSON
	Settings settings `json:"settings"`
}

func opPasswordCreate(ctx context.Context, s *service, args json.RawMessage, _ conv) (any, error) {
	var a createArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if err := s.domainAllowed(a.Mailbox); err != nil {
		return nil, err
	}
	p, secret, err := s.store.CreatePassword(a.Mailbox, a.Name, a.Scopes, a.Expires)
	if err != nil {
		return nil, storeError(err)
	}
	s.log.Info("app password created", "user", p.Mailbox, "id", p.ID, "name", p.Name)
	out := createResult{passwordJSON: toPasswordJSON(p), Settings: clientSettings(s.cfg)}
	out.Password = secret
	return out, nil
}

// domainAllowed enforces accounts.domains.
func (s *service) domainAllowed(mailbox string) error {
	domains := s.cfg.Accounts.Domains
	if len(domains) == 0 {
		return nil
	}
	_, domain, _ := strings.Cut(strings.ToLower(strings.TrimSpace(mailbox)), "@")
	if !slices.Contains(domains, domain) {
		return withHint(errorf("%s is not in a domain listed in accounts.domains", mailbox),
			"add the domain to accounts.domains in the config")
	}
	return nil
}

func opPasswordList(ctx context.Context, s *service, args json.RawMessage, _ conv) (any, error) {
	var a struct {
		Mailbox string `json:"mailbox"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	ps, err := s.store.ListPasswords(a.Mailbox)
	if err != nil {
		return nil, storeError(err)
	}
	out := make([]passwordJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, toPasswordJSON(p))
	}
	return out, nil
}

// revokeResult says what was revoked and how many live sessions ended.
type revokeResult struct {
	Revoked  []passwordJSON `json:"revoked"`
	Sessions int            `json:"sessions_closed"`
}

func opPasswordRevoke(ctx context.Context, s *service, args json.RawMessage, _ conv) (any, error) {
	var a struct {
		Mailbox string `json:"mailbox"`
		ID      string `json:"id"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	p, err := s.store.RevokePassword(a.Mailbox, a.ID)
	if err != nil {
		return nil, storeError(err)
	}
	n := s.closeSessions(func(ss *proxy.Session) bool { return ss.PasswordID == p.ID })
	s.log.Info("app password revoked", "user", p.Mailbox, "id", p.ID, "sessions_closed", n)
	return revokeResult{Revoked: []passwordJSON{toPasswordJSON(p)}, Sessions: n}, nil
}

func opPasswordRevokeAll(ctx context.Context, s *service, args json.RawMessage, _ conv) (any, error) {
	var a struct {
		Mailboxes []string `json:"mailboxes"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	out := revokeResult{Revoked: []passwordJSON{}}
	for _, m := range a.Mailboxes {
		ps, err := s.store.RevokeAll(m)
		if err != nil {
			return out, storeError(err)
		}
		ids := make(map[string]bool, len(ps))
		for _, p := range ps {
			ids[p.ID] = true
			out.Revoked = append(out.Revoked, toPasswordJSON(p))
		}
		n := s.closeSessions(func(ss *proxy.Session) bool { return ids[ss.PasswordID] })
		out.Sessions += n
		s.log.Info("app passwords revoked", "user", m, "count", len(ps), "sessions_closed", n)
	}
	return out, nil
}
