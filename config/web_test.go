package config

import (
	"os"
	"reflect"
	"testing"
)

// genericPortal is an oauth section the portal can use, appended after a
// web section so the lines of the case stay as written.
const genericPortal = "oauth:\n  provider: generic\n  client_id: x\n  client_secret: s\n" +
	"  token_url: https://idp.example/token\n  device_authorization_url: https://idp.example/device\n" +
	"  issuer: https://idp.example\n" +
	"imap: {upstream: {address: \"mx.example:993\", tls: implicit}}\n" +
	"smtp: {upstream: {address: \"mx.example:587\", tls: starttls}}\n"

func TestWebOff(t *testing.T) {
	for _, s := range []string{genericPortal, "web: {}\n" + genericPortal, "web: {listen: []}\n" + genericPortal} {
		c := mustParse(t, "m.yaml", s)
		if c.Web.Enabled() || !reflect.DeepEqual(c.Web, Web{}) {
			t.Errorf("%q: web = %+v, want the portal off", s, c.Web)
		}
	}
}

func TestWeb(t *testing.T) {
	c := mustParse(t, "m.yaml", y(
		"web:",
		"  listen:",
		`    - { address: ":443", tls: IMPLICIT, min_version: "1.3" }`,
		`    - { address: "127.0.0.1:8080", tls: none }`,
		"  public_url: https://mail.example.com",
		"  admins: [IT@Example.com, ' it@example.com', Boss@example.COM]",
		"  admin_role: ' mailgate.admin '",
		"  require_mfa: true",
	)+genericPortal)
	want := Web{
		Listen: []Listener{{Address: ":443", TLS: TLSImplicit, MinVersion: "1.3"},
			{Address: "127.0.0.1:8080", TLS: TLSNone}},
		PublicURL: "https://mail.example.com",
		Admins:    []string{"it@example.com", "boss@example.com"},
		AdminRole: "mailgate.admin", RequireMFA: true,
	}
	if !reflect.DeepEqual(c.Web, want) {
		t.Errorf("web:\n got %+v\nwant %+v", c.Web, want)
	}
	if !c.Web.Enabled() || c.Web.RedirectURL() != "https://mail.example.com/auth/callback" {
		t.Errorf("enabled %v, redirect %q", c.Web.Enabled(), c.Web.RedirectURL())
	}
	// http on loopback, for -dev and a portal behind a local proxy.
	c = mustParse(t, "m.yaml", y("web:", `  listen: [{address: "127.0.0.1:0", tls: none}]`,
		"  public_url: http://localhost:8080")+genericPortal)
	if c.Web.RedirectURL() != "http://localhost:8080/auth/callback" {
		t.Errorf("redirect %q", c.Web.RedirectURL())
	}
}

func TestIssuerDefaults(t *testing.T) {
	tests := []struct{ oauth, want string }{
		{"{provider: google, client_id: x, client_secret: s}", "https://accounts.google.com"},
		{"{provider: microsoft, tenant: 72F988BF-86F1-41AF-91AB-2D7CD011DB47, client_id: x}",
			"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"},
		{"{provider: microsoft, tenant: contoso.onmicrosoft.com, client_id: x}", ""},
		{"{provider: microsoft, tenant: contoso.onmicrosoft.com, client_id: x, " +
			"issuer: \"https://login.microsoftonline.us/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0\"}",
			"https://login.microsoftonline.us/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"},
		{"{provider: generic, client_id: x, token_url: \"http://127.0.0.1:9/token\", auth_url: \"http://127.0.0.1:9/auth\"}\n" +
			"imap: {upstream: {address: \"mx.example:993\", tls: implicit}}\n" +
			"smtp: {upstream: {address: \"mx.example:587\", tls: starttls}}", ""},
		{"{provider: generic, client_id: x, token_url: \"http://127.0.0.1:9/token\", auth_url: \"http://127.0.0.1:9/auth\", " +
			"issuer: \"http://127.0.0.1:9/\"}\n" +
			"imap: {upstream: {address: \"mx.example:993\", tls: implicit}}\n" +
			"smtp: {upstream: {address: \"mx.example:587\", tls: starttls}}", "http://127.0.0.1:9/"},
	}
	for _, tt := range tests {
		c := mustParse(t, "m.yaml", "oauth: "+tt.oauth+"\n")
		if c.OAuth.Issuer != tt.want {
			t.Errorf("%s: issuer %q, want %q", tt.oauth, c.OAuth.Issuer, tt.want)
		}
	}
}

// TestPortalProviders: the portal with each provider's smallest valid
// section.
func TestPortalProviders(t *testing.T) {
	web := y("web:", `  listen: [{address: ":443", tls: implicit}]`, "  public_url: https://mail.example.com")
	for _, oauth := range []string{
		"{provider: google, client_id: x, client_secret: s}",
		"{provider: microsoft, tenant: 72f988bf-86f1-41af-91ab-2d7cd011db47, client_id: x, client_secret_file: f}",
		"{provider: microsoft, flow: app, tenant: contoso.com, client_id: x, client_secret: s, " +
			"issuer: \"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0\"}",
	} {
		mustParse(t, "m.yaml", web+"oauth: "+oauth+"\n")
	}
}

func TestParseWebErrors(t *testing.T) {
	web := func(lines ...string) string {
		return y(append([]string{"web:", `  listen: [{address: ":443", tls: implicit}]`}, lines...)...)
	}
	tests := []parseError{
		{"starttls", y("web:", "  listen:", `    - { address: ":443", tls: starttls }`) + genericPortal,
			3, "web.listen[0].tls", `"starttls" is not a mode for the web (want implicit or none)`},
		{"no tls", y("web:", "  listen:", `    - { address: ":443" }`) + genericPortal,
			3, "web.listen[0].tls", "missing (want implicit or none)"},
		{"none in public", y("web:", "  listen:", `    - { address: ":80", tls: none }`) + genericPortal,
			3, "web.listen[0].tls", "not a loopback address"},
		{"bad address", y("web:", "  listen:", `    - { address: "443", tls: implicit }`) + genericPortal,
			3, "web.listen[0].address", "not host:port"},
		{"address of imap", y("imap:", "  listen:", `    - { address: ":993", tls: implicit }`,
			"web:", "  listen:", `    - { address: ":993", tls: implicit }`, "  public_url: https://m.example") + msOAuth,
			6, "web.listen[0].address", "already used by imap.listen[0]"},
		{"web min_version", y("web:", "  listen:", `    - { address: "127.0.0.1:80", tls: none, min_version: "1.2" }`) + genericPortal,
			3, "web.listen[0].min_version", "tls: none"},
		{"proxy protocol without trusted", y("web:", "  listen:", `    - { address: ":443", tls: implicit, proxy_protocol: true }`,
			"  public_url: https://m.example") + genericPortal, 3, "web.listen[0].proxy_protocol", "proxy_protocol.trusted"},
		{"no public_url", web() + genericPortal, 1, "web.public_url", "required when web.listen is set"},
		{"public_url http", web("  public_url: http://mail.example.com") + genericPortal,
			3, "web.public_url", "not https (http only on a loopback host"},
		{"public_url slash", web("  public_url: https://mail.example.com/") + genericPortal,
			3, "web.public_url", "ends in a slash"},
		{"public_url path", web("  public_url: https://mail.example.com/portal") + genericPortal,
			3, "web.public_url", "has a path"},
		{"public_url query", web("  public_url: https://mail.example.com?a=b") + genericPortal,
			3, "web.public_url", "has a path, query"},
		{"public_url no host", web("  public_url: mail.example.com") + genericPortal,
			3, "web.public_url", "not a URL"},
		{"public_url without listen", y("web:", "  public_url: ftp://x") + genericPortal,
			2, "web.public_url", "not https"},
		{"admin not a mailbox", web("  public_url: https://m.example", "  admins: [it@example.com, example.com]") + genericPortal,
			4, "web.admins[1]", `"example.com" is not a mailbox`},
		{"admin with space", web("  public_url: https://m.example", "  admins:", "    - it @example.com") + genericPortal,
			5, "web.admins[0]", "not a mailbox"},
		{"admin_role with space", web("  public_url: https://m.example", "  admin_role: mailgate admin") + genericPortal,
			4, "web.admin_role", "not an app role value"},
		{"require_mfa not bool", web("  public_url: https://m.example", "  require_mfa: yes please") + genericPortal,
			4, "web.require_mfa", "want true or false"},
		{"unknown web key", web("  public_uri: https://m.example") + genericPortal, 3, "web.public_uri", "unknown key"},
		{"generic without issuer", web("  public_url: https://m.example", "oauth:", "  provider: generic",
			"  client_id: x", "  client_secret: s", "  token_url: https://idp.example/token", "  auth_url: https://idp.example/auth",
			"imap: {upstream: {address: \"mx.example:993\", tls: implicit}}",
			"smtp: {upstream: {address: \"mx.example:587\", tls: starttls}}"),
			4, "oauth.issuer", "required for the portal (web.listen) with provider generic"},
		{"issuer over http", y("oauth:", "  provider: google", "  client_id: x", "  client_secret: s",
			"  issuer: http://accounts.google.com"), 5, "oauth.issuer", "not an https URL"},
		{"issuer with query", y("oauth:", "  provider: google", "  client_id: x", "  client_secret: s",
			"  issuer: https://accounts.google.com?x=1"), 5, "oauth.issuer", "not an https URL"},
		{"microsoft common", web("  public_url: https://m.example", "oauth:", "  provider: microsoft", "  tenant: common",
			"  client_id: x", "  client_secret: s", "  allowed_tenants: [72f988bf-86f1-41af-91ab-2d7cd011db47]"),
			6, "oauth.tenant", `"common" cannot sign users in to the portal (web.listen)`},
		{"microsoft organizations", web("  public_url: https://m.example", "oauth:", "  provider: microsoft",
			"  tenant: organizations", "  client_id: x", "  client_secret: s",
			"  allowed_tenants: [72f988bf-86f1-41af-91ab-2d7cd011db47]"),
			6, "oauth.tenant", `"organizations" cannot sign users in to the portal`},
		{"microsoft domain tenant", web("  public_url: https://m.example", "oauth:", "  provider: microsoft",
			"  tenant: contoso.onmicrosoft.com", "  client_id: x", "  client_secret: s"),
			4, "oauth.issuer", "Microsoft's ID tokens name the tenant by its ID"},
		{"google app has no client", web("  public_url: https://m.example", "oauth:", "  provider: google", "  flow: app",
			"  service_account_file: k.json"), 4, "oauth.client_id", "required for the portal"},
		{"no secret", web("  public_url: https://m.example", "oauth:", "  provider: microsoft",
			"  tenant: 72f988bf-86f1-41af-91ab-2d7cd011db47", "  client_id: x"),
			4, "oauth.client_secret_file", "required for the portal (web.listen), a confidential client"},
	}
	wantParseErrors(t, tests, nil)
}

func TestPortalTestdata(t *testing.T) {
	c := mustParse(t, "../testdata/config/portal.yaml", string(mustRead(t, "../testdata/config/portal.yaml")))
	if !c.Web.Enabled() || c.Web.RedirectURL() != "https://mail.example.com/auth/callback" ||
		c.OAuth.Issuer != "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0" {
		t.Errorf("portal.yaml: web %+v, issuer %q", c.Web, c.OAuth.Issuer)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
