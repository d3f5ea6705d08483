package main

import (
	"log/slog"

	"mailgate/config"
	"mailgate/proxy/admin"
	"mailgate/proxy/oauth"
	"mailgate/store"
)

// service is what the admin operations need from the daemon or the CLI;
// admin turns it into the package's Options. The daemon serves it on the
// admin socket; the CLI runs it in-process when no daemon runs (bbolt lets
// only one process open the file). Either way the same code runs.
type service struct {
	cfg   *config.Config
	store *store.Store
	oauth *oauth.Manager // nil when the oauth section cannot be used
	// sessions are the daemon's live sessions; nil outside the daemon.
	sessions admin.Sessions
	// domains returns accounts.domains as the daemon has them now (they
	// change at a reload); nil means the config's.
	domains func() []string
	// settings returns the client settings as the daemon has them now
	// (they change at a reload); nil means the config's.
	settings func() admin.Settings
	log      *slog.Logger
	// onLinkState is told of unlinks (the daemon's alerts); nil: nobody.
	onLinkState func(mailbox, state, reason string)
}

// admin returns the admin operations on s's store.
func (s *service) admin() *admin.Service {
	cfg := s.cfg
	if s.domains == nil {
		s.domains = func() []string { return cfg.Accounts.Domains }
	}
	return admin.New(&admin.Options{
		Store: s.store, OAuth: s.oauth, Link: linkFlow(cfg.OAuth),
		Domains:  s.domains,
		Settings: clientSettings(cfg), CurrentSettings: s.settings, Sessions: s.sessions, Logger: s.log,
		OnLinkState: s.onLinkState,
	})
}

// linkFlow says how "account link" signs in: not at all with the app
// flow; with the authorization-code flow for Google (its device flow
// cannot carry the Gmail scope) and for a generic provider that has an
// authorization endpoint but no device one; else with the device flow.
func linkFlow(o config.OAuth) admin.LinkFlow {
	switch {
	case o.Flow == config.FlowApp:
		return admin.LinkNone
	case o.Provider == config.ProviderGoogle,
		o.Provider == config.ProviderGeneric && o.DeviceAuthorizationURL == "" && o.AuthURL != "":
		return admin.LinkAuthCode
	}
	return admin.LinkDevice
}
