package testenv

import (
	"fmt"
	"testing"
)

// recorder is a TB that records whether it was skipped or failed.
type recorder struct{ skipped, failed string }

func (r *recorder) Helper()                           {}
func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

// TestMissing: outside CI a missing part skips, in CI it fails.
func TestMissing(t *testing.T) {
	t.Setenv("MAILGATE_CI", "")
	var r recorder
	Missing(&r, "dovecot not installed")
	if r.skipped != "dovecot not installed" || r.failed != "" {
		t.Errorf("outside CI: %+v, want a skip", r)
	}
	t.Setenv("MAILGATE_CI", "1")
	r = recorder{}
	Missing(&r, "dovecot not installed")
	if r.failed == "" || r.skipped != "" {
		t.Errorf("in CI: %+v, want a failure", r)
	}
}
