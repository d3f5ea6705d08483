package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStoreDriverErrors: keys that do not belong together are refused at
// the line of the key that is wrong.
func TestStoreDriverErrors(t *testing.T) {
	tests := []parseError{
		{"unknown driver", y("store:", "  driver: mysql"), 2, "store.driver", `unknown driver "mysql" (want bbolt or postgres)`},
		{"path with postgres", y("store:", "  driver: postgres", "  path: /var/lib/mailgate/mailgate.db",
			"  dsn: host=db", "  key_file: /etc/mailgate/mailgate.key"), 3, "store.path", "set with driver postgres"},
		{"dsn and dsn_file", y("store:", "  driver: postgres", "  dsn: host=db", "  dsn_file: /etc/mailgate/pg.dsn",
			"  key_file: /etc/mailgate/mailgate.key"), 3, "store.dsn", "set together with store.dsn_file"},
		{"no dsn", y("store:", "  driver: postgres", "  key_file: /etc/mailgate/mailgate.key"),
			1, "store.dsn_file", "required with driver postgres"},
		{"no key file", y("store:", "  driver: postgres", "  dsn: host=db"),
			1, "store.key_file", "required with driver postgres"},
		{"dsn with bbolt", y("store:", "  path: /var/lib/mailgate/mailgate.db", "  dsn: host=db"),
			3, "store.dsn", "set with driver bbolt"},
		{"dsn_file with default driver", y("store:", "  dsn_file: pg.dsn"), 2, "store.dsn_file", "set with driver bbolt"},
	}
	wantParseErrors(t, tests, withOAuth)
}

// TestStorePostgresDefaults: with postgres nothing is derived from a
// database directory; the socket has its own default, an explicit one wins,
// and relative paths are relative to the config file.
func TestStorePostgresDefaults(t *testing.T) {
	c := mustParse(t, "/etc/mailgate/mailgate.yaml",
		y("store:", "  driver: Postgres", "  dsn_file: pg.dsn", "  key_file: mailgate.key")+msOAuth)
	want := Store{Driver: DriverPostgres, DSNFile: "/etc/mailgate/pg.dsn", KeyFile: "/etc/mailgate/mailgate.key"}
	if c.Store != want {
		t.Errorf("store = %+v, want %+v", c.Store, want)
	}
	if c.Admin.Socket != "/run/mailgate/admin.sock" {
		t.Errorf("admin.socket = %q, want /run/mailgate/admin.sock", c.Admin.Socket)
	}
	c = mustParse(t, "m.yaml", y("store:", "  driver: postgres", "  dsn: postgres://db/mailgate",
		"  key_file: /k", "admin:", "  socket: /srv/mailgate.sock")+msOAuth)
	if c.Admin.Socket != "/srv/mailgate.sock" || c.Store.DSN != "postgres://db/mailgate" {
		t.Errorf("admin.socket = %q, dsn = %q", c.Admin.Socket, c.Store.DSN)
	}
}

// TestLoadDSNFile: Load reads the DSN from its file without the trailing
// newline, and refuses a file open to group or others naming the file and
// the chmod that fixes it; the DSN itself never appears in the error.
func TestLoadDSNFile(t *testing.T) {
	const dsn = "postgres://mailgate:s3cret@db.example.com/mailgate"
	cfg := y("store:", "  driver: postgres", "  dsn_file: pg.dsn", "  key_file: mailgate.key") + msOAuth
	dir := writeFiles(t, map[string]string{"mailgate.yaml": cfg, "pg.dsn": dsn + "\n"})
	file, dsnFile := filepath.Join(dir, "mailgate.yaml"), filepath.Join(dir, "pg.dsn")
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if c.Store.DSN != dsn {
		t.Errorf("dsn = %q, want %q", c.Store.DSN, dsn)
	}
	for mode, msg := range map[os.FileMode]string{
		0o644: dsnFile + " is open to group and others (mode 0644); run: chmod 600 " + dsnFile,
		0o640: dsnFile + " is open to group (mode 0640); run: chmod 600 " + dsnFile,
		0o602: dsnFile + " is open to others (mode 0602)",
	} {
		if err := os.Chmod(dsnFile, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(file)
		if err == nil {
			t.Errorf("dsn file mode %04o accepted", mode)
			continue
		}
		wantError(t, err, file, 3, "store.dsn_file", msg)
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error shows the DSN: %v", err)
		}
	}
	if err := os.WriteFile(dsnFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dsnFile, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(file)
	wantError(t, err, file, 3, "store.dsn_file", dsnFile+" is empty")
}
