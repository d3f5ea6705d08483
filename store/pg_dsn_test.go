package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"mailgate/internal/pgtest"
)

// TestPostgresPasswordSources: the DSN's password may instead come from
// PGPASSWORD or a .pgpass file (PGPASSFILE), as with libpq; a wrong one is
// an error of its own, not ErrUnavailable, and the DSN (which may hold a
// password) is not repeated in an error.
func TestPostgresPasswordSources(t *testing.T) {
	_, cl := pgtest.Start(t)
	cfg, err := pgx.ParseConfig(cl.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	o, _ := testOptions(t)
	o.Driver, o.Path, o.DSN = DriverPostgres, "", cl.DSNWithoutPassword(cfg.Database)

	t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("PGPASSWORD", "wrong")
	if _, err := Open(o); err == nil || errors.Is(err, ErrUnavailable) {
		t.Errorf("wrong password: %v, want an error that is not ErrUnavailable", err)
	}

	t.Setenv("PGPASSWORD", cl.Password())
	openT(t, o).Close()

	os.Unsetenv("PGPASSWORD")
	pass := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(pass, []byte("127.0.0.1:*:*:"+pgtest.Superuser+":"+cl.Password()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGPASSFILE", pass)
	openT(t, o).Close()

	bad := *o
	bad.DSN = "postgres://u:secret-in-dsn@127.0.0.1:notaport/db"
	if _, err := Open(&bad); !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "secret-in-dsn") {
		t.Errorf("bad DSN: %v, want ErrInvalid without the password", err)
	}
}
