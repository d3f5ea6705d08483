package oauth

import (
	"cmp"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/endpoints"
	"golang.org/x/oauth2/jwt"
)

// Default scopes (docs/clients.md, "Microsoft scopes and permissions" and
// "Google scopes, and no device flow"). Delegated flows add OpenID scopes so
// that an ID token names the user who approved the link.
var (
	microsoftDelegated = []string{"https://outlook.office.com/IMAP.AccessAsUser.All",
		"https://outlook.office.com/SMTP.Send", "offline_access", "openid", "email", "profile"}
	microsoftApp    = []string{"https://outlook.office365.com/.default"}
	googleDelegated = []string{"https://mail.google.com/", "openid", "email"}
	googleApp       = []string{"https://mail.google.com/"}
)

// setup builds the oauth2 configuration for the provider and flow.
func (m *Manager) setup(o *Options) error {
	if o.Flow != Delegated && o.Flow != App {
		return fmt.Errorf("unknown flow %q (want %q or %q)", o.Flow, Delegated, App)
	}
	if o.Flow == Delegated && o.Store == nil {
		return errors.New("delegated flow needs a token store")
	}
	switch o.Provider {
	case Microsoft:
		return m.setupMicrosoft(o)
	case Google:
		return m.setupGoogle(o)
	case Generic:
		if o.TokenURL == "" {
			return errors.New("generic provider needs token_url")
		}
		return m.setupClient(o, oauth2.Endpoint{}, nil, nil)
	}
	return fmt.Errorf("unknown provider %q", o.Provider)
}

func (m *Manager) setupMicrosoft(o *Options) error {
	if o.Flow == App && o.Tenant == "" && o.TokenURL == "" {
		return errors.New("app flow needs a tenant: client credentials cannot use \"common\"")
	}
	if o.Flow == Delegated && multiTenant(o.Tenant) && len(o.AllowedTenants) == 0 {
		// Any directory's users could sign in, with claims their own
		// admins set.
		return fmt.Errorf("delegated flow on tenant %q needs AllowedTenants", cmp.Or(o.Tenant, "common"))
	}
	return m.setupClient(o, endpoints.AzureAD(o.Tenant), microsoftDelegated, microsoftApp)
}

func (m *Manager) setupGoogle(o *Options) error {
	if o.Flow == Delegated {
		return m.setupClient(o, endpoints.Google, googleDelegated, nil)
	}
	cfg, err := serviceAccount(o.ServiceAccountJSON)
	if err != nil {
		return err
	}
	cfg.Scopes = pick(o.Scopes, googleApp)
	if o.TokenURL != "" {
		cfg.TokenURL = o.TokenURL
	}
	m.jwt = cfg
	return nil
}

// multiTenant reports whether tenant names one of Microsoft's multi-tenant
// endpoints rather than one directory; "" means "common".
func multiTenant(tenant string) bool {
	switch strings.ToLower(tenant) {
	case "", "common", "organizations", "consumers":
		return true
	}
	return false
}

// setupClient configures the client-ID based flows: delegated (refresh,
// device and code grants) or app (client credentials).
func (m *Manager) setupClient(o *Options, ep oauth2.Endpoint, delegated, app []string) error {
	if o.ClientID == "" {
		return errors.New("client_id is required")
	}
	override(&ep.TokenURL, o.TokenURL)
	override(&ep.DeviceAuthURL, o.DeviceAuthURL)
	override(&ep.AuthURL, o.AuthURL)
	// RFC 6749 section 2.3.1: servers must take HTTP Basic; public clients
	// (no secret) send client_id as a form field. Microsoft and Google take
	// both, so form fields there avoid the double request of auto-detection.
	ep.AuthStyle = oauth2.AuthStyleInParams
	if o.Provider == Generic && o.ClientSecret != "" {
		ep.AuthStyle = oauth2.AuthStyleInHeader
	}
	if o.Flow == App {
		if o.ClientSecret == "" {
			return errors.New("app flow needs client_secret")
		}
		m.cc = &clientcredentials.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret,
			TokenURL: ep.TokenURL, Scopes: pick(o.Scopes, app), AuthStyle: ep.AuthStyle}
		return nil
	}
	redirect := o.RedirectURL
	if redirect == "" {
		redirect = "http://localhost" // loopback redirect of native apps, RFC 8252 section 7.3
	}
	m.cfg = &oauth2.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		Endpoint: ep, RedirectURL: redirect, Scopes: pick(o.Scopes, delegated)}
	return nil
}

func override(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func pick(configured, def []string) []string {
	if configured != nil {
		return configured
	}
	return def
}

// serviceAccount reads a Google service account key file. It does what
// google.JWTConfigFromJSON does without pulling in the GCE metadata client
// that package depends on, and checks the key now rather than at the first
// login.
func serviceAccount(js []byte) (*jwt.Config, error) {
	var f struct {
		Type         string `json:"type"`
		ClientEmail  string `json:"client_email"`
		PrivateKey   string `json:"private_key"`
		PrivateKeyID string `json:"private_key_id"`
		TokenURI     string `json:"token_uri"`
	}
	if len(js) == 0 {
		return nil, errors.New("app flow needs the service account JSON key")
	}
	if err := json.Unmarshal(js, &f); err != nil {
		return nil, fmt.Errorf("service account JSON: %w", err)
	}
	if f.Type != "service_account" || f.ClientEmail == "" {
		return nil, fmt.Errorf("service account JSON: type %q, want \"service_account\" with client_email", f.Type)
	}
	if err := checkKey([]byte(f.PrivateKey)); err != nil {
		return nil, fmt.Errorf("service account JSON: private_key: %w", err)
	}
	tokenURL := f.TokenURI
	if tokenURL == "" {
		tokenURL = endpoints.Google.TokenURL
	}
	return &jwt.Config{Email: f.ClientEmail, PrivateKey: []byte(f.PrivateKey),
		PrivateKeyID: f.PrivateKeyID, TokenURL: tokenURL}, nil
}

// checkKey accepts what the jwt package accepts: a PEM RSA key in PKCS #8
// or PKCS #1 form.
func checkKey(p []byte) error {
	b, _ := pem.Decode(p)
	if b == nil {
		return errors.New("no PEM block")
	}
	if _, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
		return nil
	}
	_, err := x509.ParsePKCS1PrivateKey(b.Bytes)
	return err
}
