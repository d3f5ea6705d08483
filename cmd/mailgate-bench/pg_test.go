package main

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"mailgate/internal/mailstack"
	"mailgate/internal/testenv"
)

// TestSmokePG runs the PostgreSQL rows in miniature (a throwaway cluster,
// a bbolt and two PostgreSQL daemons of the real binary) and checks that
// they produced figures, with no failed login or revocation. It asserts
// nothing about speed.
func TestSmokePG(t *testing.T) {
	if err := mailstack.Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	testenv.NeedRoot(t)
	logOut = io.Discard
	cfg := defaults()
	cfg.quick()
	cfg.only = "pg"
	cfg.out = filepath.Join(t.TempDir(), "bench.json")
	rep, err := run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Skipped) > 0 {
		testenv.Missing(t, "%v", rep.Skipped)
	}
	for _, w := range []string{"logins/s at 20 concurrent", "logins/s at 50 concurrent",
		"revoke to session end p50", "revoke to session end p99"} {
		if !hasRow(rep, w) {
			t.Errorf("no row %q in %+v (skipped: %v)", w, rep.Rows, rep.Skipped)
		}
	}
	for _, path := range []string{"bbolt", "postgres"} {
		for _, r := range rep.Rates[path] {
			if r.Errors != 0 || r.ProxyCPUms <= 0 {
				t.Errorf("%s, %d concurrent: %+v; want no errors and CPU per login > 0", path, r.Concurrency, r)
			}
		}
	}
	for _, r := range rep.Rows {
		clean := strings.HasPrefix(r.Name, "PostgreSQL store: logins/s") || strings.Contains(r.Note, " revocations, 0 errors;")
		if r.Direct <= 0 || r.Mailgate <= 0 || !clean {
			t.Errorf("row %q: bbolt or same instance %v, postgres or other instance %v; %s", r.Name, r.Direct, r.Mailgate, r.Note)
		}
	}
}
