// Package admin is the one typed table of admin operations: creating,
// listing and revoking app passwords, linking and unlinking mailboxes,
// backing up the store. The daemon serves the table on a 0600 unix socket
// (Server), the CLI calls it there (Call) or runs it in-process when no
// daemon runs (Service.Call), and the web portal calls the typed methods.
package admin

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"mailgate/proxy/oauth"
	"mailgate/store"
)

// Sessions ends live sessions; the daemon's session registry implements it.
type Sessions interface {
	ClosePassword(id string) int     // ends sessions that logged in with password id (and logins of it in flight)
	CloseMailbox(mailbox string) int // ends every session of mailbox (and logins in flight)
}

// LinkFlow says how "account link" signs a mailbox in at the provider.
type LinkFlow int

const (
	// LinkDevice uses the device authorization grant (RFC 8628): the admin
	// enters a code at the provider.
	LinkDevice LinkFlow = iota
	// LinkAuthCode uses the authorization-code flow: the admin opens a URL
	// and pastes back where the browser was sent. Google needs it, its
	// device flow cannot carry the Gmail scope.
	LinkAuthCode
	// LinkNone is the app flow: mailboxes use the organisation's grant and
	// are never linked one by one.
	LinkNone
)

// Settings are what a mail user enters in the client, shown after
// password create. The field names are a contract for scripts (-json).
type Settings struct {
	Hostname string     `json:"hostname"`
	IMAP     []Endpoint `json:"imap"`
	SMTP     []Endpoint `json:"smtp"`
	POP3     []Endpoint `json:"pop3,omitempty"` // absent when POP3 is off
}

// Endpoint is one port a mail client can use.
type Endpoint struct {
	Port     int    `json:"port"`
	Security string `json:"security"` // as clients label it: SSL/TLS, STARTTLS or none
}

// Options configure a Service. Store is required; a nil or zero field
// other than Store means the default its comment names.
type Options struct {
	Store    *store.Store
	OAuth    *oauth.Manager  // nil: operations that need it fail with "oauth is not configured"
	Link     LinkFlow        // how account.link signs in; LinkDevice by default
	Domains  func() []string // the allowed domains now (accounts.domains); nil or empty: any
	Settings Settings        // returned by password.create
	// CurrentSettings, when set, gives the settings at each
	// password.create instead of Settings: the daemon's change at a
	// reload, and the user must get the ports that now serve.
	CurrentSettings func() Settings
	Sessions        Sessions     // nil: no live sessions (the CLI without a daemon)
	Logger          *slog.Logger // nil: slog.Default()
	// OnLinkState is told when account.unlink removes a link (state
	// "unlinked"), as oauth.Options.OnLinkState is of the other changes;
	// nil tells nothing.
	OnLinkState func(mailbox, state, reason string)
}

// Service runs the admin operations on one store.
type Service struct {
	store    *store.Store
	oauth    *oauth.Manager
	link     LinkFlow
	domains  func() []string
	settings func() Settings
	sessions Sessions
	log      *slog.Logger
	onLink   func(mailbox, state, reason string)
}

// New returns a Service for opts.
func New(opts *Options) *Service {
	s := &Service{store: opts.Store, oauth: opts.OAuth, link: opts.Link, domains: opts.Domains,
		settings: opts.CurrentSettings, sessions: opts.Sessions, log: opts.Logger, onLink: opts.OnLinkState}
	if s.settings == nil {
		fixed := opts.Settings
		s.settings = func() Settings { return fixed }
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

// domainAllowed enforces accounts.domains.
func (s *Service) domainAllowed(mailbox string) error {
	if s.domains == nil {
		return nil
	}
	domains := s.domains()
	if len(domains) == 0 {
		return nil
	}
	_, domain, _ := strings.Cut(strings.ToLower(strings.TrimSpace(mailbox)), "@")
	if !slices.Contains(domains, domain) {
		return WithHint(fmt.Errorf("%s is not in a domain listed in accounts.domains", mailbox),
			"add the domain to accounts.domains in the config")
	}
	return nil
}

func (s *Service) needOAuth() error {
	if s.oauth == nil {
		return WithHint(errors.New("oauth is not configured"), "set the oauth section of the config")
	}
	return nil
}
