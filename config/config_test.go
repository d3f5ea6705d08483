package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// y joins lines into a YAML text, so a case's line numbers can be counted
// from its arguments: the first argument is line 1.
func y(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// msOAuth is a valid oauth section, appended to cases that have none. It
// comes last so it does not shift the lines of the case.
const msOAuth = "oauth:\n  provider: microsoft\n  tenant: contoso.onmicrosoft.com\n  client_id: app-id\n"

func withOAuth(s string) string {
	if strings.Contains(s, "oauth:") {
		return s
	}
	return s + msOAuth
}

// wantError checks that err is an *Error at exactly file:line: key, with
// msg in its text.
func wantError(t *testing.T, err error, file string, line int, key, msg string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *config.Error", err, err)
	}
	if e.File != file || e.Line != line || e.Key != key {
		t.Errorf("error at %s:%d key %q, want %s:%d key %q (%v)", e.File, e.Line, e.Key, file, line, key, err)
	}
	prefix := fmt.Sprintf("%s:%d: ", file, line)
	if line == 0 {
		prefix = file + ": "
	}
	if key != "" {
		prefix += key + ": "
	}
	if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), msg) {
		t.Errorf("err = %q, want prefix %q and %q in it", err, prefix, msg)
	}
}

// parseError is a config that must not parse: where the error points and
// what it says.
type parseError struct {
	name string
	yaml string
	line int
	key  string
	msg  string
}

// wantParseErrors parses each case, with add applied to its yaml first
// (nil: as it is; most cases need an oauth section added), and checks the
// error with wantError.
func wantParseErrors(t *testing.T, tests []parseError, add func(string) string) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := tt.yaml
			if add != nil {
				yaml = add(yaml)
			}
			c, err := Parse("m.yaml", []byte(yaml))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			wantError(t, err, "m.yaml", tt.line, tt.key, tt.msg)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []parseError{
		{"unknown tls mode", y("hostname: h", "imap:", "  listen:", `    - { address: ":993", tls: tsl }`),
			4, "imap.listen[0].tls", `unknown mode "tsl" (want implicit, starttls or none)`},
		{"listener without tls", y("smtp:", "  listen:", "    - address: :465"),
			3, "smtp.listen[0].tls", "missing"},
		{"none on all addresses", y("imap:", "  listen:", "    - address: \":143\"", "      tls: none"),
			4, "imap.listen[0].tls", "not a loopback address"},
		{"none on a public ip", y("smtp:", "  listen:", `    - { address: "192.0.2.1:25", tls: none }`),
			3, "smtp.listen[0].tls", "force: true"},
		{"listen address without port", y("imap:", "  listen:", "    - { address: \"993\", tls: implicit }"),
			3, "imap.listen[0].address", "not host:port"},
		{"listen port too big", y("imap:", "  listen:", "    - { address: \":99999\", tls: implicit }"),
			3, "imap.listen[0].address", "no valid port"},
		{"duplicate listener", y("imap:", "  listen:", `    - { address: ":993", tls: implicit }`,
			"smtp:", "  listen:", `    - { address: ":993", tls: implicit }`),
			6, "smtp.listen[0].address", "already used by imap.listen[0]"},
		{"no listeners at all", y("imap:", "  listen: []", "smtp:", "  listen: []"),
			2, "imap.listen", "no listeners"},
		{"tls min_version", y("tls:", "  min_version: 1.4"), 2, "tls.min_version", `unknown version "1.4"`},
		{"listener min_version", y("imap:", "  listen:", `    - { address: ":993", tls: implicit, min_version: "2" }`),
			3, "imap.listen[0].min_version", `unknown version "2"`},
		{"min_version without tls", y("imap:", "  listen:", `    - { address: "127.0.0.1:143", tls: none, min_version: "1.0" }`),
			3, "imap.listen[0].min_version", "tls: none"},
		{"insecure cipher", y("tls:", "  ciphers: [TLS_RSA_WITH_AES_128_CBC_SHA]"), 2, "tls.ciphers[0]", "insecure cipher suite"},
		{"listener cipher", y("imap:", "  listen:", `    - { address: ":993", tls: implicit, ciphers: [AES128-SHA] }`),
			3, "imap.listen[0].ciphers[0]", `"AES128-SHA"`},
		{"ciphers without tls", y("imap:", "  listen:", `    - { address: "127.0.0.1:143", tls: none, ciphers: [TLS_AES_128_GCM_SHA256] }`),
			3, "imap.listen[0].ciphers", "tls: none"},
		{"negative grace", y("shutdown_grace: -1s"), 1, "shutdown_grace", "negative"},
		{"grace not a duration", y("shutdown_grace: soon"), 1, "shutdown_grace", ""},
		// yaml takes no bare number for a duration, not even 0: the
		// messages and docs say 0s
		{"grace without unit", y("shutdown_grace: 0"), 1, "shutdown_grace", "want a duration such as 30s, got a number"},
		{"negative grace says 0s", y("shutdown_grace: -1s"), 1, "shutdown_grace", "(0s closes sessions at once)"},
		{"cert without key", y("hostname: h", "tls:", "  cert_file: a.crt"), 2, "tls.key_file", "required when tls.cert_file is set"},
		{"key without cert", y("tls:", "  key_file: a.key"), 1, "tls.cert_file", "required when tls.key_file is set"},
		{"upstream without port", y("imap:", "  upstream:", "    address: outlook.office365.com"),
			3, "imap.upstream.address", "not host:port"},
		{"upstream port 0", y("smtp:", "  upstream: { address: \"smtp.example.com:0\", tls: starttls }"),
			2, "smtp.upstream.address", "no valid port"},
		{"upstream without host", y("smtp:", "  upstream: { address: \":587\" }"), 2, "smtp.upstream.address", "no host"},
		{"upstream in clear", y("imap:", "  upstream: { address: \"imap.example.com:143\", tls: none }"),
			2, "imap.upstream.tls", "tokens in clear"},
		{"upstream mode", y("imap:", "  upstream:", "    tls: ssl"), 3, "imap.upstream.tls", `unknown mode "ssl"`},
		{"upstream mechanism", y("smtp:", "  upstream:", "    mechanism: plain"),
			3, "smtp.upstream.mechanism", `unknown mechanism "plain" (want xoauth2 or oauthbearer)`},
		{"negative message size", y("smtp:", "  max_message_size: -1"), 2, "smtp.max_message_size", "negative"},
		{"hostname with port", y("hostname: mail.example.com:993"), 1, "hostname", "not a host name"},
		{"socket too long", y("admin:", "  socket: /"+strings.Repeat("s", 120)), 2, "admin.socket", "longer than"},
		{"domain with @", y("accounts:", "  domains:", "    - contoso.com", "    - user@contoso.com"),
			4, "accounts.domains[1]", "is an address"},
		{"empty domain", y("accounts:", `  domains: [""]`), 2, "accounts.domains[0]", "empty domain"},
		{"max_passwords 0", y("accounts:", "  max_passwords: 0"), 2, "accounts.max_passwords", "out of range"},
		{"max_passwords 1001", y("accounts:", "  max_passwords: 1001"), 2, "accounts.max_passwords", "1 to 1000"},
		{"log level", y("log:", "  level: verbose"), 2, "log.level", `unknown level "verbose"`},
		{"log format", y("log:", "  format: xml"), 2, "log.format", `unknown format "xml"`},
	}
	wantParseErrors(t, tests, withOAuth)
}

func TestParseOAuthErrors(t *testing.T) {
	tests := []parseError{
		{"no provider", y("hostname: h", "oauth:", "  tenant: t"), 2, "oauth.provider", "missing"},
		{"unknown provider", y("oauth:", "  provider: yahoo"), 2, "oauth.provider", `unknown provider "yahoo"`},
		{"unknown flow", y("oauth:", "  provider: microsoft", "  flow: implicit"), 3, "oauth.flow", `unknown flow "implicit"`},
		{"microsoft without tenant", y("hostname: h", "oauth:", "  provider: microsoft", "  client_id: x"),
			2, "oauth.tenant", "required for provider microsoft"},
		{"microsoft without client_id", y("oauth:", "  provider: microsoft", "  tenant: contoso.com"),
			1, "oauth.client_id", "required for provider microsoft"},
		{"microsoft tenant with slash", y("oauth:", "  provider: microsoft", "  tenant: a/b", "  client_id: x"),
			3, "oauth.tenant", "not a tenant"},
		{"microsoft app without secret", y("oauth:", "  provider: microsoft", "  flow: app", "  tenant: t", "  client_id: x"),
			1, "oauth.client_secret_file", "required for flow app"},
		{"microsoft app on common", y("oauth:", "  provider: microsoft", "  flow: app", "  tenant: common",
			"  client_id: x", "  client_secret: s"), 4, "oauth.tenant", "specific tenant"},
		{"microsoft delegated on common", y("oauth:", "  provider: microsoft", "  tenant: common", "  client_id: x"),
			3, "oauth.tenant", `"common" lets any Entra ID directory sign in; name your tenant, or list the tenant IDs`},
		{"microsoft delegated on organizations", y("oauth:", "  provider: microsoft", "  tenant: Organizations", "  client_id: x",
			"  allowed_tenants: []"), 3, "oauth.tenant", "oauth.allowed_tenants"},
		{"microsoft delegated on consumers", y("oauth:", "  provider: microsoft", "  tenant: consumers", "  client_id: x"),
			3, "oauth.tenant", "oauth.allowed_tenants"},
		{"allowed_tenants by name", y("oauth:", "  provider: microsoft", "  tenant: common", "  client_id: x",
			"  allowed_tenants:", "    - 72f988bf-86f1-41af-91ab-2d7cd011db47", "    - contoso.onmicrosoft.com"),
			7, "oauth.allowed_tenants[1]", `"contoso.onmicrosoft.com" is not a tenant ID`},
		{"allowed_tenants on google", y("oauth:", "  provider: google", "  client_id: x", "  client_secret: s",
			"  allowed_tenants: [72f988bf-86f1-41af-91ab-2d7cd011db47]"),
			5, "oauth.allowed_tenants", "used only by provider microsoft with flow delegated"},
		{"allowed_tenants on app flow", y("oauth:", "  provider: microsoft", "  flow: app", "  tenant: t", "  client_id: x",
			"  client_secret: s", "  allowed_tenants: [72f988bf-86f1-41af-91ab-2d7cd011db47]"),
			7, "oauth.allowed_tenants", "used only by provider microsoft with flow delegated"},
		{"both secrets", y("oauth:", "  provider: microsoft", "  tenant: t", "  client_id: x",
			"  client_secret: s", "  client_secret_file: f"), 5, "oauth.client_secret", "not both"},
		{"google app without key", y("oauth:", "  provider: google", "  flow: app"),
			1, "oauth.service_account_file", "required for provider google with flow app"},
		{"google delegated without id", y("oauth:", "  provider: google"), 1, "oauth.client_id", "required"},
		{"google delegated without secret", y("oauth:", "  provider: google", "  client_id: x"),
			1, "oauth.client_secret_file", "required for provider google with flow delegated"},
		{"service account on microsoft", y("oauth:", "  provider: microsoft", "  service_account_file: k.json"),
			3, "oauth.service_account_file", "only by provider google with flow app"},
		{"generic without token_url", y("oauth:", "  provider: generic"), 1, "oauth.token_url", "required for provider generic"},
		{"generic without client_id", y("oauth:", "  provider: generic", "  token_url: https://idp.example/token"),
			1, "oauth.client_id", "required for provider generic"},
		{"generic delegated without device url", y("oauth:", "  provider: generic", "  token_url: https://idp.example/token",
			"  client_id: x"), 1, "oauth.device_authorization_url", "required for provider generic with flow delegated"},
		{"generic app without secret", y("oauth:", "  provider: generic", "  flow: app",
			"  token_url: https://idp.example/token", "  client_id: x"), 1, "oauth.client_secret_file", "flow app"},
		{"generic without upstream", y("oauth:", "  provider: generic", "  flow: app", "  token_url: https://idp.example/token",
			"  client_id: x", "  client_secret: s"), 0, "imap.upstream.address", "required for provider generic"},
		{"token_url over http", y("oauth:", "  provider: microsoft", "  token_url: http://login.example.com/token"),
			3, "oauth.token_url", "not an https URL"},
		{"relative auth_url", y("oauth:", "  provider: google", "  auth_url: /authorize"), 3, "oauth.auth_url", "not an https URL"},
		{"redirect_url", y("oauth:", "  provider: google", "  redirect_url: localhost:8080"),
			3, "oauth.redirect_url", "not an http or https URL"},
		{"scope with space", y("oauth:", "  provider: microsoft", "  scopes:", "    - openid email"),
			3, "oauth.scopes", `"openid email" is not a scope`},
	}
	wantParseErrors(t, tests, nil)
}

// TestParseYAMLErrors covers what yaml itself refuses: the message must
// still carry the file, the line and, where it can be found, the key.
func TestParseYAMLErrors(t *testing.T) {
	tests := []parseError{
		{"unknown top-level key", y("hostname: h", "listen: :993"), 2, "listen", "unknown key"},
		{"unknown nested key", y("smtp:", "  listen:", "    - address: :587", "      tls: starttls", "      min_tls: 1.0"),
			5, "smtp.listen[0].min_tls", "unknown key"},
		{"unknown key beside an inline section", y("smtp:", "  max_size: 10"), 2, "smtp.max_size", "unknown key"},
		{"key that is not read from the file", y("oauth:", "  service_account_key: x"), 2, "oauth.service_account_key", "unknown key"},
		{"long text for a number", y("smtp:", "  max_message_size: twenty-five megabytes"),
			2, "smtp.max_message_size", "want a whole number, got text"},
		{"unknown key in flow mapping", y("imap:", "  upstream: { address: \"a:993\", tsl: implicit }"),
			2, "imap.upstream.tsl", "unknown key"},
		{"text for a number", y("accounts:", "  domains: [a.com]", "  max_passwords: many"),
			3, "accounts.max_passwords", "want a whole number, got text"},
		{"mapping for a list", y("imap:", "  listen:", "    address: :993"), 3, "imap.listen", "want a list, got a mapping"},
		{"list for text", y("hostname: [a, b]"), 1, "hostname", "want text, got a list"},
		{"text for a duration", y("limits:", "  lockout: soon"), 2, "limits.lockout", "want a duration such as 30s, got text"},
		// yaml cuts a fraction off when it decodes into an integer: 2.9
		// would silently become 2
		{"fraction for a number", y("accounts:", "  max_passwords: 2.9"), 2, "accounts.max_passwords", "want a whole number, got 2.9"},
		{"fraction for a limit", y("limits: { connections: 99.99 }"), 1, "limits.connections", "want a whole number, got 99.99"},
		{"fraction for a size", y("smtp:", "  max_message_size: 2.5e-3"), 2, "smtp.max_message_size", "want a whole number, got 2.5e-3"},
		{"unknown key in a merged mapping", y("<<: { hostnme: h }"), 1, "hostnme", "unknown key"},
		{"wrong kind through an alias", y("tls: { ciphers: &c [TLS_AES_128_GCM_SHA256] }", "imap:", "  listen:",
			`    - { address: ":993", tls: implicit, force: *c }`), 1, "imap.listen[0].force", "want true or false, got a list"},
		{"text for a boolean", y("imap:", "  listen:", `    - { address: ":143", tls: none, force: maybe }`),
			3, "imap.listen[0].force", "want true or false"},
		// yaml gives a syntax error only as text, with its line in it;
		// config passes it on unchanged rather than parse it.
		{"syntax", y("hostname: h", "imap:", "  listen: [", "store: {"), 0, "", "yaml: line 4: did not find expected"},
		{"duplicate key", y("hostname: a", "hostname: b"), 2, "", `mapping key "hostname" already defined at line 1`},
		{"second document", y("hostname: a", "---", "hostname: b"), 2, "", "second yaml document"},
		// yaml says only "invalid leading UTF-8 octet", without a line
		{"latin-1 in a comment", y("hostname: a", "imap:", "  # caf\xe9", "  listen: []"), 3, "", "not UTF-8 (byte 0xe9)"},
		{"latin-1 in a value", y("hostname: caf\xe9"), 1, "", "not UTF-8 (byte 0xe9)"},
		{"second empty document", y("hostname: a", "...", "---"), 3, "", "second yaml document"},
		{"top-level list", y("", "- hostname: a"), 2, "", "want a mapping"},
		{"top-level text", y("mailgate"), 1, "", "want a mapping"},
	}
	wantParseErrors(t, tests, nil)
}

func TestParseEmpty(t *testing.T) {
	for _, s := range []string{"", "\n", "# only a comment\n\n# and another\n", "---\n", "~\n", "null\n"} {
		_, err := Parse("mailgate.yaml", []byte(s))
		if !errors.Is(err, ErrEmpty) {
			t.Errorf("Parse(%q) = %v, want ErrEmpty", s, err)
		}
		if err != nil && err.Error() != "mailgate.yaml: empty config" {
			t.Errorf("Parse(%q) = %q, want \"mailgate.yaml: empty config\"", s, err)
		}
	}
}

// TestParseMergeBomb: merge keys whose lists repeat an alias, nested ten
// deep in under 1 KB, expand to 9^10 mappings. Parse must refuse such a
// file quickly instead of spinning (config check, serve and SIGHUP all
// parse), as yaml itself refuses an alias bomb.
func TestParseMergeBomb(t *testing.T) {
	s := "{tls: implicit}"
	for i := range 10 {
		s = fmt.Sprintf("{<<: [&a%d %s%s]}", i, s, strings.Repeat(fmt.Sprintf(", *a%d", i), 8))
	}
	done := make(chan error, 1)
	go func() {
		_, err := Parse("m.yaml", []byte(withOAuth("imap:\n  upstream: "+s+"\n")))
		done <- err
	}()
	select {
	case err := <-done:
		var e *Error
		if err == nil || !errors.As(err, &e) || e.File != "m.yaml" {
			t.Errorf("Parse = %v, want a *config.Error naming m.yaml", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Parse still running after 10s")
	}
}

// TestParseManyKeys: a file of 100,000 distinct keys (1 MB) is refused in
// well under a second; the check for keys written twice compared every
// pair, 40 s of CPU for this file.
func TestParseManyKeys(t *testing.T) {
	var b strings.Builder
	for i := range 100000 {
		fmt.Fprintf(&b, "k%d: 1\n", i)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Parse("m.yaml", []byte(b.String()))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Parse accepted 100,000 unknown keys")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Parse still running after 20s")
	}
}

// TestParseWholeFloat: a number in float notation that is whole is
// taken as it is.
func TestParseWholeFloat(t *testing.T) {
	c := mustParse(t, "m.yaml", withOAuth(y("smtp:", "  max_message_size: 2.5e7")))
	if c.SMTP.MaxMessageSize != 25000000 {
		t.Errorf("max_message_size = %d, want 25000000", c.SMTP.MaxMessageSize)
	}
}
