package config

import (
	"net/url"
	"strconv"
	"strings"
)

// checkOAuth checks what each provider and flow needs to get a token.
func (d *doc) checkOAuth(c *Config) error {
	o := &c.OAuth
	for _, check := range []func(*OAuth) error{
		d.checkProviderFlow, d.checkSecret, d.checkURLs, d.checkIssuer, d.checkScopes, d.checkAllowedTenants,
	} {
		if err := check(o); err != nil {
			return err
		}
	}
	switch o.Provider {
	case ProviderMicrosoft:
		return d.checkMicrosoft(o)
	case ProviderGoogle:
		return d.checkGoogle(o)
	}
	return d.checkGeneric(o)
}

func (d *doc) checkProviderFlow(o *OAuth) error {
	switch o.Provider {
	case ProviderMicrosoft, ProviderGoogle, ProviderGeneric:
	case "":
		return d.errorf("oauth.provider", "missing (want microsoft, google or generic)")
	default:
		return d.errorf("oauth.provider", "unknown provider %q (want microsoft, google or generic)", o.Provider)
	}
	if o.Flow != FlowDelegated && o.Flow != FlowApp {
		return d.errorf("oauth.flow", "unknown flow %q (want delegated or app)", o.Flow)
	}
	if o.ServiceAccountFile != "" && (o.Provider != ProviderGoogle || o.Flow != FlowApp) {
		return d.errorf("oauth.service_account_file", "used only by provider google with flow app")
	}
	return nil
}

func (d *doc) checkSecret(o *OAuth) error {
	if o.ClientSecret != "" && o.ClientSecretFile != "" {
		return d.errorf("oauth.client_secret", "set client_secret or client_secret_file, not both")
	}
	return nil
}

func hasSecret(o *OAuth) bool { return o.ClientSecret != "" || o.ClientSecretFile != "" }

// checkURLs insists on https for the endpoints that receive secrets and
// tokens; plain http is accepted only to loopback, for local test providers.
func (d *doc) checkURLs(o *OAuth) error {
	for _, e := range [...]struct{ key, s string }{
		{"oauth.token_url", o.TokenURL},
		{"oauth.device_authorization_url", o.DeviceAuthorizationURL},
		{"oauth.auth_url", o.AuthURL},
	} {
		key, s := e.key, e.s
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || (u.Scheme != "https" && (u.Scheme != "http" || !isLoopback(u.Hostname()))) {
			return d.errorf(key, "%q is not an https URL", s)
		}
	}
	u, err := url.Parse(o.RedirectURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return d.errorf("oauth.redirect_url", "%q is not an http or https URL", o.RedirectURL)
	}
	return nil
}

// checkScopes refuses scopes the token request could not carry: the scope
// parameter is a space-separated list (RFC 6749 section 3.3).
func (d *doc) checkScopes(o *OAuth) error {
	for _, s := range o.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			return d.errorf("oauth.scopes", "%q is not a scope", s)
		}
	}
	return nil
}

func (d *doc) checkMicrosoft(o *OAuth) error {
	switch {
	case o.Tenant == "":
		return d.errorf("oauth.tenant", "required for provider microsoft (the directory, such as contoso.onmicrosoft.com)")
	case strings.ContainsAny(o.Tenant, " \t/?#:@"):
		return d.errorf("oauth.tenant", "%q is not a tenant name or ID", o.Tenant)
	case o.ClientID == "":
		return d.errorf("oauth.client_id", "required for provider microsoft (the application ID of the app registration)")
	case o.Flow == FlowApp && !hasSecret(o):
		return d.errorf("oauth.client_secret_file", "required for flow app (or set client_secret)")
	case !multiTenant(o.Tenant):
		return nil
	case o.Flow == FlowApp:
		// Client credentials have no user to pick the directory from.
		return d.errorf("oauth.tenant", "flow app needs a specific tenant, not %q", o.Tenant)
	case len(o.AllowedTenants) == 0:
		// Users of any directory can sign in, and their own admins set
		// the claims that name them (the "nOAuth" pattern).
		return d.errorf("oauth.tenant", "%q lets any Entra ID directory sign in; name your tenant, "+
			"or list the tenant IDs whose users may link mailboxes in oauth.allowed_tenants", o.Tenant)
	}
	return nil
}

// multiTenant reports whether tenant is one of Microsoft's multi-tenant
// endpoints rather than one directory.
func multiTenant(tenant string) bool {
	switch strings.ToLower(tenant) {
	case "common", "organizations", "consumers":
		return true
	}
	return false
}

// checkAllowedTenants lower-cases oauth.allowed_tenants and checks that each
// is a tenant ID: the tid claim is always the directory's GUID, never its
// domain name.
func (d *doc) checkAllowedTenants(o *OAuth) error {
	if len(o.AllowedTenants) > 0 && (o.Provider != ProviderMicrosoft || o.Flow != FlowDelegated) {
		return d.errorf("oauth.allowed_tenants", "used only by provider microsoft with flow delegated")
	}
	for i, t := range o.AllowedTenants {
		t = strings.ToLower(strings.TrimSpace(t))
		if !isGUID(t) {
			return d.errorf("oauth.allowed_tenants["+strconv.Itoa(i)+"]",
				"%q is not a tenant ID (want the directory's GUID, as in the tid claim, such as 72f988bf-86f1-41af-91ab-2d7cd011db47)", o.AllowedTenants[i])
		}
		o.AllowedTenants[i] = t
	}
	return nil
}

// isGUID reports whether s is 8-4-4-4-12 lower-case hex digits.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdef", r) {
				return false
			}
		}
	}
	return true
}

func (d *doc) checkGoogle(o *OAuth) error {
	if o.Flow == FlowApp {
		if o.ServiceAccountFile == "" {
			return d.errorf("oauth.service_account_file", "required for provider google with flow app")
		}
		return nil
	}
	// Google's device flow does not allow the Gmail scope, so delegated
	// means the code flow, whose token request needs the client secret.
	if o.ClientID == "" {
		return d.errorf("oauth.client_id", "required for provider google with flow delegated")
	}
	if !hasSecret(o) {
		return d.errorf("oauth.client_secret_file", "required for provider google with flow delegated (or set client_secret)")
	}
	return nil
}

func (d *doc) checkGeneric(o *OAuth) error {
	switch {
	case o.TokenURL == "":
		return d.errorf("oauth.token_url", "required for provider generic")
	case o.ClientID == "":
		return d.errorf("oauth.client_id", "required for provider generic")
	case o.Flow == FlowDelegated && o.DeviceAuthorizationURL == "" && o.AuthURL == "":
		return d.errorf("oauth.device_authorization_url", "required for provider generic with flow delegated (or set auth_url for the code flow)")
	case o.Flow == FlowApp && !hasSecret(o):
		return d.errorf("oauth.client_secret_file", "required for provider generic with flow app (or set client_secret)")
	}
	return nil
}
