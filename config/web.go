package config

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Web is the self-service portal: users sign in at the provider (OpenID
// Connect) and manage their own app passwords; admins revoke for others.
// The portal is off when Listen is empty (the section left out).
type Web struct {
	// Listen are the portal's listeners; TLS is TLSImplicit or TLSNone.
	Listen []Listener `yaml:"listen"`
	// PublicURL is what browsers see, scheme and host only
	// (https://mail.example.com); the redirect URI registered at the
	// provider is PublicURL + "/auth/callback".
	PublicURL string `yaml:"public_url"`
	// Admins are the canonical mailboxes allowed on /admin.
	Admins []string `yaml:"admins"`
	// AdminRole: users whose ID token's roles claim holds it are admins
	// too ("" none).
	AdminRole string `yaml:"admin_role"`
	// RequireMFA refuses creating a password unless the sign-in used MFA
	// (the ID token's amr claim).
	RequireMFA bool `yaml:"require_mfa"`
}

// CallbackPath is where the provider sends the browser back to the portal.
const CallbackPath = "/auth/callback"

// Enabled reports whether the portal runs.
func (w Web) Enabled() bool { return len(w.Listen) > 0 }

// RedirectURL is the portal's redirect URI, as registered at the provider.
func (w Web) RedirectURL() string { return w.PublicURL + CallbackPath }

// Issuers of the providers' ID tokens (OpenID Connect Discovery 1.0
// section 4.3: the issuer must match the discovery document exactly).
const (
	googleIssuer    = "https://accounts.google.com"
	microsoftIssuer = "https://login.microsoftonline.com/%s/v2.0"
)

// defaultIssuer derives oauth.issuer for microsoft and google. Microsoft's
// ID tokens name the directory by its tenant ID, so the issuer can only be
// derived from a tenant given as its GUID; from a domain name it is left
// empty and checkWeb asks for it.
func defaultIssuer(o *OAuth) {
	if o.Issuer != "" {
		return
	}
	switch o.Provider {
	case ProviderGoogle:
		o.Issuer = googleIssuer
	case ProviderMicrosoft:
		if t := strings.ToLower(o.Tenant); isGUID(t) {
			o.Issuer = fmt.Sprintf(microsoftIssuer, t)
		}
	}
}

func defaultWeb(w *Web) {
	lowerModes(w.Listen)
	if len(w.Listen) == 0 {
		w.Listen = nil // "listen: []" switches the portal off, as leaving it out does
	}
	if len(w.Admins) == 0 {
		w.Admins = nil
	}
	w.AdminRole = strings.TrimSpace(w.AdminRole)
}

// checkIssuer checks oauth.issuer when it is set, whether or not the
// portal runs: like the other endpoints, https only (http to loopback).
func (d *doc) checkIssuer(o *OAuth) error {
	if o.Issuer == "" {
		return nil
	}
	u, err := url.Parse(o.Issuer)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		(u.Scheme != "https" && (u.Scheme != "http" || !isLoopback(u.Hostname()))) {
		return d.errorf("oauth.issuer", "%q is not an https URL without query (the issuer exactly as in the provider's discovery document)", o.Issuer)
	}
	return nil
}

// checkWeb checks the web section and what the portal needs from the oauth
// section. Listeners are checked with the others (checkListeners).
func (d *doc) checkWeb(c *Config) error {
	w := &c.Web
	if err := d.checkAdmins(w); err != nil {
		return err
	}
	if strings.ContainsFunc(w.AdminRole, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return d.errorf("web.admin_role", "%q is not an app role value (no spaces or control characters)", w.AdminRole)
	}
	if !w.Enabled() {
		if w.PublicURL != "" {
			return d.checkPublicURL(w.PublicURL)
		}
		return nil
	}
	if w.PublicURL == "" {
		return d.errorf("web.public_url", "required when web.listen is set (the address browsers use, such as https://%s)", c.Hostname)
	}
	if err := d.checkPublicURL(w.PublicURL); err != nil {
		return err
	}
	return d.checkPortalOAuth(&c.OAuth)
}

// checkPublicURL: the redirect URI is public_url + "/auth/callback" and
// must match the registration exactly, so public_url is scheme and host
// only. Session cookies are Secure, so plain http only on loopback, which
// browsers treat as a secure context.
func (d *doc) checkPublicURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return d.errorf("web.public_url", "%q is not a URL such as https://mail.example.com", s)
	case u.Scheme != "https" && (u.Scheme != "http" || !isLoopback(u.Hostname())):
		return d.errorf("web.public_url", "%q is not https (http only on a loopback host such as http://127.0.0.1:8080)", s)
	case u.Path == "/":
		return d.errorf("web.public_url", "%q ends in a slash; write it without (the redirect URI adds /auth/callback)", s)
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(s, "?") || strings.HasSuffix(s, "#"):
		return d.errorf("web.public_url", "%q has a path, query or user; the portal is served at the root of its host", s)
	}
	return nil
}

// checkAdmins makes web.admins canonical (ASCII lower case, as
// store.CanonicalMailbox) and refuses what is not a mailbox.
func (d *doc) checkAdmins(w *Web) error {
	var admins []string
	for i, a := range w.Admins {
		m := asciiLower(strings.TrimSpace(a))
		local, domain, ok := strings.Cut(m, "@")
		if !ok || local == "" || checkDomain(domain) != nil || len(m) > 320 ||
			strings.ContainsFunc(m, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return d.errorf("web.admins["+strconv.Itoa(i)+"]", "%q is not a mailbox (want an address such as it@example.com)", a)
		}
		if !slices.Contains(admins, m) {
			admins = append(admins, m)
		}
	}
	w.Admins = admins
	return nil
}

// checkPortalOAuth: the portal is a confidential client of the same app
// registration, and verifies ID tokens against oauth.issuer.
func (d *doc) checkPortalOAuth(o *OAuth) error {
	switch {
	case o.Provider == ProviderMicrosoft && multiTenant(o.Tenant):
		// go-oidc checks the issuer exactly; a multi-tenant endpoint's ID
		// tokens each carry their own directory's issuer.
		return d.errorf("oauth.tenant", "%q cannot sign users in to the portal (web.listen): "+
			"name your tenant (its domain or ID)", o.Tenant)
	case o.Issuer == "" && o.Provider == ProviderMicrosoft:
		return d.errorf("oauth.issuer", "required for the portal (web.listen) when oauth.tenant is the domain %q: "+
			"Microsoft's ID tokens name the tenant by its ID; set https://login.microsoftonline.com/TENANT-ID/v2.0, "+
			"or set oauth.tenant to the tenant ID", o.Tenant)
	case o.Issuer == "":
		return d.errorf("oauth.issuer", "required for the portal (web.listen) with provider %s "+
			"(the issuer of the provider's discovery document)", o.Provider)
	case o.ClientID == "":
		return d.errorf("oauth.client_id", "required for the portal (web.listen): the app registration users sign in to")
	case !hasSecret(o):
		return d.errorf("oauth.client_secret_file", "required for the portal (web.listen), a confidential client "+
			"(or set client_secret)")
	}
	return nil
}

// asciiLower folds ASCII letters only, as store.CanonicalMailbox does:
// Unicode case mapping would make distinct addresses equal.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
