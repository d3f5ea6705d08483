package main

// The portal's wiring: config's web section and oauth.issuer into
// oauth.SignInOptions and web.Options. Each web listener is a front end
// like an IMAP or SMTP one (plan, apply), so it starts, reloads and stops
// with them.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"mailgate/config"
	"mailgate/proxy"
	"mailgate/proxy/admin"
	"mailgate/proxy/oauth"
	"mailgate/proxy/web"
)

// protoWeb names the portal's front ends in logs ("listening") and keys.
const protoWeb = "web"

// signIn adapts *oauth.SignIn to web.SignIn: web sees no oauth type.
type signIn struct{ s *oauth.SignIn }

var _ web.SignIn = signIn{}

func (a signIn) AuthURL(ctx context.Context, state, nonce, verifier string, fresh bool) (string, error) {
	return a.s.AuthURL(ctx, state, nonce, verifier, fresh)
}

func (a signIn) Finish(ctx context.Context, code, verifier, nonce string) (*web.User, error) {
	id, err := a.s.Finish(ctx, code, verifier, nonce)
	if err != nil {
		return nil, err
	}
	return &web.User{Mailbox: id.Mailbox, AuthTime: id.AuthTime, MFA: id.MFA, Roles: id.Roles}, nil
}

// newSignIn builds the portal's sign-in from the oauth section the daemon
// started with (an oauth change needs a restart, as for the token manager)
// and the web section of cfg. With the delegated flow the sign-in links
// the mailbox through the daemon's token manager, as "account link" does.
func (d *daemon) newSignIn(cfg *config.Config) (web.SignIn, error) {
	o := d.oauthCfg
	opts := &oauth.SignInOptions{
		Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		RedirectURL: cfg.Web.RedirectURL(), Scopes: portalScopes(o),
		AllowMailbox: allowMailbox(d.auth.Domains), Logger: d.log,
	}
	if o.Flow == config.FlowDelegated {
		opts.Manager = d.oauth
	}
	s, err := oauth.NewSignIn(opts)
	if err != nil {
		return nil, err
	}
	return signIn{s}, nil
}

// portalScopes: with the app flow the sign-in only identifies the user;
// with the delegated flow it also grants mail access, so that signing in
// links the mailbox: the configured (mail) scopes, the OpenID ones and
// offline_access for a refresh token. Google refuses offline_access (it
// grants refresh tokens through access_type=offline instead).
func portalScopes(o config.OAuth) []string {
	sc := []string{"openid", "email", "profile"}
	if o.Flow == config.FlowApp {
		return sc
	}
	sc = append(slices.Clone(o.Scopes), sc...)
	if o.Provider != config.ProviderGoogle {
		sc = append(sc, "offline_access")
	}
	var out []string
	for _, s := range sc {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// allowMailbox refuses a mailbox outside accounts.domains before the
// sign-in stores anything. domains is the Authenticator's, so a reload
// applies.
func allowMailbox(domains func() []string) func(string) error {
	return func(mailbox string) error {
		ds := domains()
		_, domain, _ := strings.Cut(mailbox, "@")
		if len(ds) == 0 || slices.Contains(ds, domain) {
			return nil
		}
		return fmt.Errorf("%w: %s is not in a domain listed in accounts.domains", web.ErrMailboxRefused, mailbox)
	}
}

// webOptions are what every web front end of cfg shares; planWeb adds each
// listener's TLS config.
func (d *daemon) webOptions(cfg *config.Config, sign web.SignIn, th *proxy.Throttle, lim *proxy.Limits) web.Options {
	return web.Options{
		Admin: d.adminSvc, SignIn: sign, PublicURL: cfg.Web.PublicURL,
		Admins: cfg.Web.Admins, AdminRole: cfg.Web.AdminRole, RequireMFA: cfg.Web.RequireMFA,
		Settings: clientSettings(cfg), Throttle: th, Limits: lim, Logger: d.log,
	}
}

// webKey is what a web front end depends on besides what every front end
// does (frontKey): the web section, and the client settings it shows.
type webKey struct {
	Web      config.Web
	Settings admin.Settings
}

// planWeb plans a front end per web listener of cfg, sharing one sign-in.
// Each is checked now, so that a bad config is refused whole, and built
// again when it opens, after the IMAP and SMTP listeners: the settings it
// shows name the ports they really bound.
func (d *daemon) planWeb(cfg *config.Config, certs *proxy.CertLoader, th *proxy.Throttle, lim *proxy.Limits) ([]frontSpec, error) {
	if !cfg.Web.Enabled() {
		return nil, nil
	}
	sign, err := d.newSignIn(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: web: %w", cfg.File, err)
	}
	var specs []frontSpec
	for _, l := range cfg.Web.Listen {
		tc, err := serverTLS(cfg, l, certs, d.log)
		if err != nil {
			return nil, fmt.Errorf("%s: web.listen: %w", cfg.File, err)
		}
		opts := d.webOptions(cfg, sign, th, lim)
		opts.TLSConfig = tc
		if _, err := web.New(&opts); err != nil {
			return nil, fmt.Errorf("%s: web: %w", cfg.File, err)
		}
		build := func() (server, error) {
			o := opts
			o.Settings = boundSettings(cfg.Hostname, d.bound)
			return web.New(&o)
		}
		specs = append(specs, frontSpec{key: frontKey(cfg, protoWeb, l), proto: protoWeb, l: l,
			mode: tlsMode(l.TLS), build: build})
	}
	return specs, nil
}
