package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"mailgate/internal/fakeidp"
	"mailgate/proxy/admin"
)

// e2eWeb turns the portal on in an e2e daemon (e2eOpts.web): one implicit
// TLS listener on loopback, the fake identity provider as OIDC issuer with
// its interactive sign-in form.
type e2eWeb struct {
	admins []string // web.admins
	port   string   // chosen by webConfig (freePort): public_url names it, so it cannot be 0
}

// webClientSecret makes the portal a confidential client, as the config
// requires.
const webClientSecret = "e2e-portal-secret"

// url is the portal's public URL, https://localhost:PORT (the daemon's
// certificate names localhost).
func (w *e2eWeb) url() string { return "https://localhost:" + w.port }

// webConfig adds the portal to the rendered config cfg when e.opts.web is
// set: the web section, and the issuer, authorization endpoint and client
// secret in the oauth section.
func (e *e2e) webConfig(cfg string) string {
	w := e.opts.web
	if w == nil {
		return cfg
	}
	if w.port == "" {
		_, w.port = splitLocal(freePort(e.t))
	}
	const anchor = "  client_id: mailgate-e2e\n"
	if !strings.Contains(cfg, anchor) {
		e.t.Fatalf("webConfig: no %q in the config", anchor)
	}
	cfg = strings.Replace(cfg, anchor, anchor+fmt.Sprintf("  client_secret: %s\n  issuer: %s\n  auth_url: %s\n",
		webClientSecret, e.idp.Issuer(), e.idp.AuthURL()), 1)
	admins, _ := json.Marshal(w.admins)
	return cfg + fmt.Sprintf(`web:
  listen:
    - { address: "127.0.0.1:%s", tls: implicit }
  public_url: %s
  admins: %s
`, w.port, w.url(), admins)
}

// newWebE2E starts an e2e daemon with the portal, the identity provider's
// sign-in form switched on.
func newWebE2E(t *testing.T, admins ...string) *e2e {
	t.Helper()
	e := newE2E(t, e2eOpts{idp: &fakeidp.Options{ClientSecret: webClientSecret}, web: &e2eWeb{admins: admins}})
	e.idp.SetInteractive(true)
	return e
}

// portal is the portal's URL plus path.
func (e *e2e) portal(path string) string { return e.opts.web.url() + path }

// passwords lists a mailbox's app passwords with "password list -json".
func (e *e2e) passwords(mailbox string) []admin.AppPassword {
	e.t.Helper()
	var ps []admin.AppPassword
	out := e.mustCLI("password", "list", "-json", mailbox)
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		e.t.Fatalf("password list -json: %v: %q", err, out)
	}
	return ps
}

// accounts lists every account with "account list -json".
func (e *e2e) accounts() []admin.Account {
	e.t.Helper()
	var as []admin.Account
	out := e.mustCLI("account", "list", "-json")
	if err := json.Unmarshal([]byte(out), &as); err != nil {
		e.t.Fatalf("account list -json: %v: %q", err, out)
	}
	return as
}
