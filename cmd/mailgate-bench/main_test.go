package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailgate/internal/mailstack"
	"mailgate/internal/testenv"
)

// TestMain lets the test binary serve as a helper process (plain relay,
// in-process upstream), as the command's binary does.
func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		if err := runHelper(spec); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmoke runs every row with tiny sizes against the real stack and the
// real mailgate binary (built with -race when the test has it) and checks
// that each produced sane numbers. It asserts nothing about speed.
func TestSmoke(t *testing.T) {
	if err := mailstack.Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	testenv.NeedRoot(t)
	logOut = io.Discard
	cfg := defaults()
	cfg.quick()
	cfg.out = filepath.Join(t.TempDir(), "bench.json")
	rep, err := run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"FETCH", "APPEND", "login p50, loopback", "login p99, loopback", "logins/s at",
		"best logins/s", "SMTP 10 KB", "SMTP one", "POP3 RETR", "login p50, upstream 40 ms away"}
	for _, w := range want {
		if !hasRow(rep, w) {
			t.Errorf("no row %q in %+v (skipped: %v)", w, rep.Rows, rep.Skipped)
		}
	}
	for path, rates := range rep.Rates {
		for _, r := range rates {
			if r.Errors != 0 {
				t.Errorf("%s, %d concurrent: %d logins failed; a login refused by mailgate's limits is a defect of the bench's config", path, r.Concurrency, r.Errors)
			}
			if r.MachineCPUms <= 0 || path == "mailgate" && r.ProxyCPUms <= 0 {
				t.Errorf("%s, %d concurrent: CPU per login %+v; want > 0", path, r.Concurrency, r)
			}
		}
	}
	for _, r := range rep.Rows {
		if strings.HasPrefix(r.Name, "best logins/s") {
			continue // 0 when no level kept p99 under 100 ms: load, not a defect
		}
		if r.Direct <= 0 || r.Mailgate <= 0 {
			t.Errorf("row %q: direct %v, mailgate %v; want both > 0", r.Name, r.Direct, r.Mailgate)
		}
		if (strings.Contains(r.Name, "FETCH") || strings.HasPrefix(r.Name, "APPEND") ||
			strings.HasPrefix(r.Name, "POP3")) && r.Relay <= 0 {
			t.Errorf("row %q: no plain relay figure", r.Name)
		}
		if r.MailgateCPU < 0 || r.RelayCPU < 0 {
			t.Errorf("row %q: CPU-s/GiB mailgate %v, plain relay %v", r.Name, r.MailgateCPU, r.RelayCPU)
		}
	}
	checkIdle(t, rep, cfg)
	if err := rep.write(cfg.out); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(strings.TrimSuffix(cfg.out, ".json") + ".md")
	if err != nil || !strings.Contains(string(md), "| measure |") || !strings.Contains(string(md), "CPU-s/GiB") {
		t.Fatalf("table not written: %v", err)
	}
}

func checkIdle(t *testing.T, rep *report, cfg *config) {
	t.Helper()
	if len(rep.Idle) != 2 {
		t.Fatalf("idle rows = %d, want 2 (Dovecot and in-process)", len(rep.Idle))
	}
	for i, n := range []int{cfg.dovecotSessions, cfg.devupSessions} {
		r := rep.Idle[i]
		// Each relayed session has at least its two copy goroutines (read
		// from the daemon's dump); RSS may even shrink over a few sessions,
		// but never by 10 MiB each.
		if r.Sessions != n || r.GoroutinesPS < 2 || r.RSSPerKiB > 10<<10 || r.IdleCPUPct < 0 {
			t.Errorf("idle row %d: %+v", i, r)
		}
	}
}

func hasRow(rep *report, prefix string) bool {
	for _, r := range rep.Rows {
		if strings.Contains(r.Name, prefix) {
			return true
		}
	}
	return false
}
