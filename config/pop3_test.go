package config

import (
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

const popScope = "https://outlook.office.com/POP.AccessAsUser.All"

// TestPOP3Off: without a pop3 section there are no POP3 listeners and no
// POP scope, so an app registration without POP permission keeps working.
func TestPOP3Off(t *testing.T) {
	for name, s := range map[string]string{
		"absent":       "hostname: h\n",
		"listen empty": y("hostname: h", "pop3:", "  listen: []"),
	} {
		t.Run(name, func(t *testing.T) {
			c := mustParse(t, "m.yaml", withOAuth(s))
			if len(c.POP3.Listen) != 0 {
				t.Errorf("pop3 listeners %+v, want none", c.POP3.Listen)
			}
			if slices.Contains(c.OAuth.Scopes, popScope) {
				t.Errorf("scopes %q have the POP scope", c.OAuth.Scopes)
			}
		})
	}
}

// TestPOP3Defaults: a pop3 section without listen gets 995 and 110, the
// provider's POP3 server, and (microsoft delegated) the POP scope.
func TestPOP3Defaults(t *testing.T) {
	for name, s := range map[string]string{
		"empty section": y("hostname: h", "pop3:"),
		"empty mapping": y("hostname: h", "pop3: {}"),
		"upstream only": y("hostname: h", "pop3:", "  upstream: { mechanism: XOAUTH2 }"),
	} {
		t.Run(name, func(t *testing.T) {
			c := mustParse(t, "m.yaml", withOAuth(s))
			want := Proto{
				Listen:   []Listener{{Address: ":995", TLS: TLSImplicit}, {Address: ":110", TLS: TLSStartTLS}},
				Upstream: Upstream{Address: "outlook.office365.com:995", TLS: TLSImplicit, Mechanism: MechXOAUTH2},
			}
			if !reflect.DeepEqual(c.POP3, want) {
				t.Errorf("pop3:\n got %+v\nwant %+v", c.POP3, want)
			}
			wantScopes := []string{"https://outlook.office.com/IMAP.AccessAsUser.All",
				"https://outlook.office.com/SMTP.Send", popScope, "offline_access", "openid", "email", "profile"}
			if !reflect.DeepEqual(c.OAuth.Scopes, wantScopes) {
				t.Errorf("scopes %q, want %q", c.OAuth.Scopes, wantScopes)
			}
		})
	}
}

func TestPOP3ProviderDefaults(t *testing.T) {
	tests := []struct {
		name, oauth, upstream string
		scopes                []string
	}{
		{"microsoft app", "oauth: {provider: microsoft, flow: app, tenant: t, client_id: x, client_secret: s}",
			"outlook.office365.com:995", []string{"https://outlook.office365.com/.default"}},
		{"google delegated", "oauth: {provider: google, client_id: x, client_secret_file: secret}",
			"pop.gmail.com:995", []string{"https://mail.google.com/", "openid", "email"}},
		{"google app", "oauth: {provider: google, flow: app, service_account_file: key.json}",
			"pop.gmail.com:995", []string{"https://mail.google.com/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, "m.yaml", y("pop3: {}", tt.oauth))
			if u := c.POP3.Upstream; u.Address != tt.upstream || u.TLS != TLSImplicit {
				t.Errorf("pop3.upstream %+v, want %s implicit", u, tt.upstream)
			}
			if !reflect.DeepEqual(c.OAuth.Scopes, tt.scopes) {
				t.Errorf("scopes %q, want %q", c.OAuth.Scopes, tt.scopes)
			}
		})
	}
}

// TestPOP3Configured: listeners and upstream as written, modes lower-cased,
// ca_file relative to the config file, scopes as written (no POP scope
// added to a list the admin chose).
func TestPOP3Configured(t *testing.T) {
	c := mustParse(t, "/etc/mailgate/mailgate.yaml", y(
		"pop3:",
		"  listen:",
		`    - { address: "127.0.0.1:1110", tls: NONE }`,
		`    - { address: ":995", tls: Implicit, min_version: "1.0" }`,
		`  upstream: { address: "mx.example:110", tls: STARTTLS, mechanism: OAUTHBEARER, ca_file: ca.pem }`,
		"oauth:",
		"  provider: generic",
		"  client_id: x",
		`  token_url: "https://idp.example/token"`,
		`  device_authorization_url: "https://idp.example/device"`,
		"imap:",
		`  upstream: { address: "mx.example:993", tls: implicit }`,
		"smtp:",
		`  upstream: { address: "mx.example:587", tls: starttls }`,
	))
	want := Proto{
		Listen: []Listener{{Address: "127.0.0.1:1110", TLS: TLSNone},
			{Address: ":995", TLS: TLSImplicit, MinVersion: "1.0"}},
		Upstream: Upstream{Address: "mx.example:110", TLS: TLSStartTLS, Mechanism: MechOAUTHBEARER,
			CAFile: "/etc/mailgate/ca.pem"},
	}
	if !reflect.DeepEqual(c.POP3, want) {
		t.Errorf("pop3:\n got %+v\nwant %+v", c.POP3, want)
	}
	c = mustParse(t, "m.yaml", y("pop3: {}", "oauth:", "  provider: microsoft", "  tenant: t", "  client_id: x",
		"  scopes: [https://outlook.office.com/IMAP.AccessAsUser.All, offline_access]"))
	if slices.Contains(c.OAuth.Scopes, popScope) {
		t.Errorf("scopes %q: POP scope added to a configured list", c.OAuth.Scopes)
	}
}

// TestPOP3OnlyListeners: POP3 alone is a valid front end.
func TestPOP3OnlyListeners(t *testing.T) {
	c := mustParse(t, "m.yaml", withOAuth(y("imap:", "  listen: []", "smtp:", "  listen: []", "pop3: {}")))
	if len(c.POP3.Listen) != 2 {
		t.Errorf("pop3 listeners %+v, want 995 and 110", c.POP3.Listen)
	}
}

func TestParsePOP3Errors(t *testing.T) {
	generic := "oauth: {provider: generic, client_id: x, token_url: \"https://idp.example/token\", " +
		"device_authorization_url: \"https://idp.example/device\"}\n" +
		"imap: {upstream: {address: \"mx.example:993\", tls: implicit}}\n" +
		"smtp: {upstream: {address: \"mx.example:587\", tls: starttls}}\n"
	tests := []parseError{
		{"unknown tls mode", y("pop3:", "  listen:", `    - { address: ":995", tls: stls }`),
			3, "pop3.listen[0].tls", `unknown mode "stls" (want implicit, starttls or none)`},
		{"plaintext on every address", y("pop3:", "  listen:", `    - { address: ":110", tls: none }`),
			3, "pop3.listen[0].tls", "not a loopback address"},
		{"duplicate of imap", y("imap:", "  listen:", `    - { address: ":993", tls: implicit }`,
			"pop3:", "  listen:", `    - { address: ":993", tls: implicit }`),
			6, "pop3.listen[0].address", "already used by imap.listen[0]"},
		{"unknown key", y("pop3:", "  listen:", `    - { address: ":995", tls: implicit, tsl: x }`),
			3, "pop3.listen[0].tsl", "unknown key"},
		{"upstream mechanism", y("pop3:", "  upstream:", "    mechanism: plain"),
			3, "pop3.upstream.mechanism", `unknown mechanism "plain" (want xoauth2 or oauthbearer)`},
		{"upstream in clear", y("pop3:", `  upstream: { address: "pop.example.com:110", tls: none }`),
			2, "pop3.upstream.tls", "tokens in clear"},
		{"generic without upstream", y("pop3:", `  listen: [{ address: ":995", tls: implicit }]`) + generic,
			1, "pop3.upstream.address", "required for provider generic"},
	}
	wantParseErrors(t, tests, withOAuth)
	// Off, a generic provider needs no pop3 upstream.
	mustParse(t, "m.yaml", generic)
}

// TestPOP3Testdata loads the POP3 examples under testdata/config.
func TestPOP3Testdata(t *testing.T) {
	dir := filepath.Join("..", "testdata", "config")
	c, err := Load(filepath.Join(dir, "pop3.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.POP3.Listen) != 2 || !slices.Contains(c.OAuth.Scopes, popScope) {
		t.Errorf("pop3.yaml: listeners %+v, scopes %q", c.POP3.Listen, c.OAuth.Scopes)
	}
	file := filepath.Join(dir, "invalid-pop3-plaintext.yaml")
	_, err = Load(file)
	wantError(t, err, file, 6, "pop3.listen[1].tls", "not a loopback address")
}
