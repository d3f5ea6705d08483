package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeFiles writes name -> content into a new temporary directory and
// returns the directory. A name with a slash makes a directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const appOAuth = "oauth:\n  provider: microsoft\n  flow: app\n  tenant: t\n  client_id: x\n  client_secret_file: secret\n"

func TestLoadSecretFile(t *testing.T) {
	for _, content := range []string{"s3cret", "s3cret\n", "s3cret\r\n"} {
		dir := writeFiles(t, map[string]string{"mailgate.yaml": appOAuth, "secret": content})
		c, err := Load(filepath.Join(dir, "mailgate.yaml"))
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if c.OAuth.ClientSecret != "s3cret" {
			t.Errorf("secret from %q = %q, want s3cret", content, c.OAuth.ClientSecret)
		}
		if c.OAuth.ClientSecretFile != filepath.Join(dir, "secret") {
			t.Errorf("ClientSecretFile = %q, want it relative to the config", c.OAuth.ClientSecretFile)
		}
	}
}

func TestParseLeavesSecretFile(t *testing.T) {
	c := mustParse(t, "/nonexistent/mailgate.yaml", appOAuth)
	if c.OAuth.ClientSecret != "" {
		t.Errorf("Parse read the secret: %q", c.OAuth.ClientSecret)
	}
}

func TestLoadSecretErrors(t *testing.T) {
	const key = `{"type": "service_account", "client_email": "a@p.iam.gserviceaccount.com", "private_key": "PRIVATE"}`
	gApp := "oauth:\n  provider: google\n  flow: app\n  service_account_file: key.json\n"
	tests := []struct {
		name  string
		files map[string]string
		key   string
		line  int
		msg   string
	}{
		{"missing secret", map[string]string{"mailgate.yaml": appOAuth}, "oauth.client_secret_file", 6, "no such file"},
		{"empty secret", map[string]string{"mailgate.yaml": appOAuth, "secret": "\n"}, "oauth.client_secret_file", 6, "is empty"},
		{"secret is a directory", map[string]string{"mailgate.yaml": appOAuth, "secret/x": ""}, "oauth.client_secret_file", 6, "secret"},
		{"missing key", map[string]string{"mailgate.yaml": gApp}, "oauth.service_account_file", 4, "no such file"},
		{"key not json", map[string]string{"mailgate.yaml": gApp, "key.json": "PRIVATE"}, "oauth.service_account_file", 4, "not JSON"},
		{"key not a service account", map[string]string{"mailgate.yaml": gApp,
			"key.json": `{"type": "authorized_user", "private_key": "PRIVATE"}`}, "oauth.service_account_file", 4, "not a service account key"},
		{"key without email", map[string]string{"mailgate.yaml": gApp,
			"key.json": strings.Replace(key, "a@p.iam.gserviceaccount.com", "", 1)}, "oauth.service_account_file", 4, "client_email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			file := filepath.Join(dir, "mailgate.yaml")
			_, err := Load(file)
			wantError(t, err, file, tt.line, tt.key, tt.msg)
			if strings.Contains(err.Error(), "PRIVATE") {
				t.Errorf("error %q shows the file's content", err)
			}
		})
	}
	dir := writeFiles(t, map[string]string{"mailgate.yaml": gApp, "key.json": key})
	c, err := Load(filepath.Join(dir, "mailgate.yaml"))
	if err != nil || string(c.OAuth.ServiceAccountKey) != key {
		t.Errorf("Load with a good key = %v; key %q", err, c.OAuth.ServiceAccountKey)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "mailgate.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file = %v, want fs.ErrNotExist", err)
	}
}

// TestLoadTooLarge: a config is a few kilobytes. A file over the limit,
// or an endless one such as /dev/zero given by mistake, is refused by name
// after reading at most the limit, instead of read until memory runs out.
func TestLoadTooLarge(t *testing.T) {
	big := strings.Repeat("# padding\n", maxFileSize/10+1)
	dir := writeFiles(t, map[string]string{"mailgate.yaml": big})
	file := filepath.Join(dir, "mailgate.yaml")
	for _, f := range []string{file, "/dev/zero"} {
		_, err := Load(f)
		wantError(t, err, f, 0, "", "larger than 1 MiB")
	}
}

// TestTestdata loads the example files that cmd, the docs and the
// acceptance checks point at.
func TestTestdata(t *testing.T) {
	tests := []struct {
		file string
		line int
		key  string
		msg  string
	}{
		{"invalid-tls-mode.yaml", 8, "imap.listen[0].tls", `unknown mode "tsl" (want implicit, starttls or none)`},
		{"invalid-unknown-key.yaml", 10, "smtp.listen[0].min_tls", "unknown key"},
		{"invalid-plaintext.yaml", 12, "imap.listen[1].tls", "not a loopback address"},
		{"invalid-two-documents.yaml", 6, "", "second yaml document"},
		{"invalid-empty.yaml", 0, "", "empty config"},
		{"invalid-portal-common.yaml", 9, "oauth.tenant", `"common" cannot sign users in to the portal`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			file := filepath.Join("..", "testdata", "config", tt.file)
			_, err := Load(file)
			wantError(t, err, file, tt.line, tt.key, tt.msg)
		})
	}
}

func TestValidExample(t *testing.T) {
	for _, name := range []string{"valid.yaml", "mailgate.example.yaml"} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join("..", "testdata", "config", name)
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			c := mustParse(t, file, string(data))
			c.File = "mailgate.yaml"
			if !reflect.DeepEqual(c, documented()) {
				t.Errorf("%s:\n got %+v\nwant %+v", name, c, documented())
			}
		})
	}
}

// documented is the config of the documented example.
func documented() *Config {
	c := mustParseDefaults()
	c.Hostname = "mail.example.com"
	c.TLS.CertFile, c.TLS.KeyFile = "/etc/mailgate/tls.crt", "/etc/mailgate/tls.key"
	c.OAuth.ClientID = "00000000-1111-2222-3333-444444444444"
	c.OAuth.ClientSecretFile = "/etc/mailgate/client-secret"
	c.Accounts.Domains = []string{"contoso.com"}
	return c
}

func mustParseDefaults() *Config {
	c, err := Parse("mailgate.yaml", []byte("hostname: h\n"+msOAuth))
	if err != nil {
		panic(err)
	}
	return c
}
