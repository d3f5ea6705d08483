package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLoadKeyFileMode: store.key_file open to group or others stops Load
// with the file and the chmod that fixes it; a missing key file is left for
// the store to create.
func TestLoadKeyFileMode(t *testing.T) {
	cfg := "store:\n  path: state/mailgate.db\n  key_file: state/mailgate.key\n" + msOAuth
	dir := writeFiles(t, map[string]string{"mailgate.yaml": cfg, "state/other": ""})
	file, key := filepath.Join(dir, "mailgate.yaml"), filepath.Join(dir, "state", "mailgate.key")
	if _, err := Load(file); err != nil {
		t.Fatalf("Load without a key file: %v", err)
	}
	tests := []struct {
		mode os.FileMode
		msg  string // "" means accepted
	}{
		{0o600, ""},
		{0o400, ""},
		{0o644, key + " is open to group and others (mode 0644); run: chmod 600 " + key},
		{0o640, key + " is open to group (mode 0640); run: chmod 600 " + key},
		{0o604, key + " is open to others (mode 0604); run: chmod 600 " + key},
		{0o620, "open to group"},
		{0o666, "open to group and others (mode 0666)"},
	}
	for _, tt := range tests {
		if err := os.WriteFile(key, make([]byte, 32), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(key, tt.mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(file)
		if tt.msg == "" {
			if err != nil {
				t.Errorf("key file mode %04o: %v", tt.mode, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("key file mode %04o accepted", tt.mode)
			continue
		}
		wantError(t, err, file, 3, "store.key_file", tt.msg)
	}
}

// TestLoadSecretFileMode: the client secret and the service account key may
// be group-readable (root:mailgate 0640, as the install guide has them) but
// not group-writable or open to others.
func TestLoadSecretFileMode(t *testing.T) {
	const key = `{"type": "service_account", "client_email": "a@p.iam.gserviceaccount.com", "private_key": "PRIVATE"}`
	gApp := "oauth:\n  provider: google\n  flow: app\n  service_account_file: key.json\n"
	for _, tt := range []struct {
		name, cfg, secret, content, key string
		line                            int
	}{
		{"client secret", appOAuth, "secret", "s3cret", "oauth.client_secret_file", 6},
		{"service account", gApp, "key.json", key, "oauth.service_account_file", 4},
	} {
		dir := writeFiles(t, map[string]string{"mailgate.yaml": tt.cfg, tt.secret: tt.content})
		file, secret := filepath.Join(dir, "mailgate.yaml"), filepath.Join(dir, tt.secret)
		for mode, msg := range map[os.FileMode]string{
			0o600: "",
			0o640: "",
			0o440: "",
			0o644: secret + " is open to others (mode 0644); run: chmod 640 " + secret,
			0o660: secret + " is open to group (mode 0660); run: chmod 640 " + secret,
			0o606: "open to others (mode 0606); run: chmod 600 ",
		} {
			if err := os.Chmod(secret, mode); err != nil {
				t.Fatal(err)
			}
			_, err := Load(file)
			switch {
			case msg == "" && err != nil:
				t.Errorf("%s mode %04o: %v", tt.name, mode, err)
			case msg != "" && err == nil:
				t.Errorf("%s mode %04o accepted", tt.name, mode)
			case msg != "":
				wantError(t, err, file, tt.line, tt.key, msg)
			}
		}
	}
}
