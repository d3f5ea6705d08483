package config

import (
	"crypto/tls"
	"os"
	"reflect"
	"testing"
	"time"
)

func mustParse(t *testing.T, name, s string) *Config {
	t.Helper()
	c, err := Parse(name, []byte(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, "mailgate.yaml", msOAuth)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		File:     "mailgate.yaml",
		Hostname: host,
		Store:    Store{Driver: "bbolt", Path: "/var/lib/mailgate/mailgate.db", KeyFile: "/var/lib/mailgate/mailgate.key"},
		Admin:    Admin{Socket: "/var/lib/mailgate/admin.sock"},
		TLS:      TLS{MinVersion: "1.2"},
		IMAP: Proto{
			Listen:   []Listener{{Address: ":993", TLS: "implicit"}, {Address: ":143", TLS: "starttls"}},
			Upstream: Upstream{Address: "outlook.office365.com:993", TLS: "implicit", Mechanism: "xoauth2"},
		},
		SMTP: SMTP{Proto: Proto{
			Listen:   []Listener{{Address: ":465", TLS: "implicit"}, {Address: ":587", TLS: "starttls"}},
			Upstream: Upstream{Address: "smtp.office365.com:587", TLS: "starttls", Mechanism: "xoauth2"},
		}},
		// Off without a pop3 section; the upstream is the provider's all the same.
		POP3: Proto{Upstream: Upstream{Address: "outlook.office365.com:995", TLS: "implicit", Mechanism: "xoauth2"}},
		OAuth: OAuth{
			Provider: "microsoft", Flow: "delegated", Tenant: "contoso.onmicrosoft.com", ClientID: "app-id",
			RedirectURL: "http://localhost",
			Scopes: []string{"https://outlook.office.com/IMAP.AccessAsUser.All",
				"https://outlook.office.com/SMTP.Send", "offline_access", "openid", "email", "profile"},
		},
		Accounts: Accounts{MaxPasswords: 40},
		Log:      Log{Level: "info", Format: "text"},
		Limits: Limits{FailureDelay: 2 * time.Second, MaxFailureDelay: 15 * time.Second,
			MaxFailures: 10, MaxMailboxFailures: 30, FailureWindow: 10 * time.Minute, Lockout: 15 * time.Minute,
			MaxEntries: 100000, ConnectionsPerIP: 50, ConnectionsPerIPv6Site: 200, Connections: 10000,
			UpstreamSessionsPerMailbox: 20, TLSHandshakeTimeout: 10 * time.Second},
		ShutdownGrace: 30 * time.Second,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
}

func TestProviderDefaults(t *testing.T) {
	tests := []struct {
		name       string
		oauth      string
		imap, smtp string
		scopes     []string
	}{
		{"microsoft app", "oauth: {provider: microsoft, flow: app, tenant: t, client_id: x, client_secret: s}",
			"outlook.office365.com:993", "smtp.office365.com:587", []string{"https://outlook.office365.com/.default"}},
		{"google delegated", "oauth: {provider: google, client_id: x, client_secret_file: secret}",
			"imap.gmail.com:993", "smtp.gmail.com:587", []string{"https://mail.google.com/", "openid", "email"}},
		{"google app", "oauth: {provider: google, flow: app, service_account_file: key.json}",
			"imap.gmail.com:993", "smtp.gmail.com:587", []string{"https://mail.google.com/"}},
		{"generic", "oauth: {provider: generic, token_url: \"https://idp.example/token\", client_id: x, " +
			"device_authorization_url: \"https://idp.example/device\"}\n" +
			"imap: {upstream: {address: \"mx.example:993\", tls: implicit}}\n" +
			"smtp: {upstream: {address: \"mx.example:587\", tls: starttls, mechanism: OAUTHBEARER}}",
			"mx.example:993", "mx.example:587", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, "m.yaml", tt.oauth+"\n")
			if c.IMAP.Upstream.Address != tt.imap || c.SMTP.Upstream.Address != tt.smtp {
				t.Errorf("upstreams %q, %q; want %q, %q", c.IMAP.Upstream.Address, c.SMTP.Upstream.Address, tt.imap, tt.smtp)
			}
			if len(c.OAuth.Scopes) != len(tt.scopes) || len(tt.scopes) > 0 && !reflect.DeepEqual(c.OAuth.Scopes, tt.scopes) {
				t.Errorf("scopes %q, want %q", c.OAuth.Scopes, tt.scopes)
			}
		})
	}
	c := mustParse(t, "m.yaml", tests[3].oauth+"\n")
	if m := c.SMTP.Upstream.Mechanism; m != MechOAUTHBEARER {
		t.Errorf("mechanism %q, want oauthbearer (lower-cased)", m)
	}
}

func TestRelativePaths(t *testing.T) {
	c := mustParse(t, "/etc/mailgate/mailgate.yaml", y(
		"store: {path: state/mailgate.db}",
		"tls: {cert_file: tls.crt, key_file: /abs/tls.key}",
		"imap: {upstream: {ca_file: ca.pem}}",
		"oauth: {provider: google, flow: app, service_account_file: ../google.json}",
	))
	for _, p := range []struct{ got, want string }{
		{c.Store.Path, "/etc/mailgate/state/mailgate.db"},
		{c.Store.KeyFile, "/etc/mailgate/state/mailgate.key"},
		{c.Admin.Socket, "/etc/mailgate/state/admin.sock"},
		{c.TLS.CertFile, "/etc/mailgate/tls.crt"},
		{c.TLS.KeyFile, "/abs/tls.key"},
		{c.IMAP.Upstream.CAFile, "/etc/mailgate/ca.pem"},
		{c.SMTP.Upstream.CAFile, ""},
		{c.OAuth.ServiceAccountFile, "/etc/google.json"},
	} {
		if p.got != p.want {
			t.Errorf("path %q, want %q", p.got, p.want)
		}
	}
}

func TestNormalise(t *testing.T) {
	c := mustParse(t, "m.yaml", withOAuth(y(
		"hostname: mail.example.com",
		"imap:",
		"  listen:",
		`    - { address: "127.0.0.1:1143", tls: NONE }`,
		`    - { address: ":1143", tls: none, force: true }`,
		`    - { address: "[::1]:1144", tls: none }`,
		`    - { address: "localhost:1145", tls: None }`,
		"smtp:",
		"  listen: []",
		"accounts:",
		"  domains: [Contoso.COM, contoso.com, ' fabrikam.com ']",
		"log: {level: DEBUG, format: JSON}",
	)))
	if len(c.SMTP.Listen) != 0 {
		t.Errorf("smtp.listen = %v, want none: an explicit empty list disables smtp", c.SMTP.Listen)
	}
	for _, l := range c.IMAP.Listen {
		if l.TLS != TLSNone {
			t.Errorf("listener %s tls %q, want none", l.Address, l.TLS)
		}
	}
	if want := []string{"contoso.com", "fabrikam.com"}; !reflect.DeepEqual(c.Accounts.Domains, want) {
		t.Errorf("domains %q, want %q", c.Accounts.Domains, want)
	}
	if c.Log.Level != "debug" || c.Log.Format != "json" || c.Log.SlogLevel().String() != "DEBUG" {
		t.Errorf("log %+v", c.Log)
	}
}

func TestTLSVersion(t *testing.T) {
	c := mustParse(t, "m.yaml", withOAuth(y(
		"tls: {min_version: '1.3'}",
		"imap:",
		"  listen:",
		`    - { address: ":993", tls: implicit }`,
		`    - { address: ":994", tls: implicit, min_version: 1.0 }`,
	)))
	for i, want := range []uint16{tls.VersionTLS13, tls.VersionTLS10} {
		got, err := c.TLSVersion(c.IMAP.Listen[i])
		if err != nil || got != want {
			t.Errorf("TLSVersion(listen[%d]) = %#x, %v; want %#x", i, got, err, want)
		}
	}
	if _, err := c.TLSVersion(Listener{MinVersion: "1.4"}); err == nil {
		t.Error("TLSVersion(1.4) succeeded")
	}
}

func TestCipherSuites(t *testing.T) {
	c := mustParse(t, "m.yaml", withOAuth(y(
		"tls: {ciphers: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]}",
		"shutdown_grace: 5s",
		"imap:",
		"  listen:",
		`    - { address: ":993", tls: implicit }`,
		`    - { address: ":994", tls: implicit, ciphers: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA] }`,
	)))
	for i, want := range []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA} {
		got, err := c.CipherSuites(c.IMAP.Listen[i])
		if err != nil || len(got) != 1 || got[0] != want {
			t.Errorf("CipherSuites(listen[%d]) = %#x, %v; want [%#x]", i, got, err, want)
		}
	}
	if c.ShutdownGrace != 5*time.Second {
		t.Errorf("ShutdownGrace = %v, want 5s", c.ShutdownGrace)
	}
	if _, err := c.CipherSuites(Listener{Ciphers: []string{"TLS_RSA_WITH_RC4_128_SHA"}}); err == nil {
		t.Error("CipherSuites(RC4) succeeded")
	}
}

func TestFind(t *testing.T) {
	tests := []struct{ flag, env, want string }{
		{"/etc/a.yaml", "/etc/b.yaml", "/etc/a.yaml"},
		{"", "/etc/b.yaml", "/etc/b.yaml"},
		{"", "", "./mailgate.yaml"},
	}
	for _, tt := range tests {
		t.Setenv("MAILGATE_CONFIG", tt.env)
		if got := Find(tt.flag); got != tt.want {
			t.Errorf("Find(%q) with $MAILGATE_CONFIG=%q = %q, want %q", tt.flag, tt.env, got, tt.want)
		}
	}
}
