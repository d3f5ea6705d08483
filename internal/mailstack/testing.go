package mailstack

import (
	"os"
	"testing"
)

// StartForTest starts a stack for a test or benchmark in a fresh temp dir
// and stops it when the test ends. It skips the test, naming the packages
// to install, when Dovecot or Postfix is missing; .ci/deps installs them
// so CI never skips.
func StartForTest(t testing.TB, introspectionURL string) *Stack {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("%v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("mailstack: needs root (postfix refuses to run otherwise)")
	}
	s, err := Start(&Options{
		IntrospectionURL: introspectionURL,
		Dir:              t.TempDir(),
		Logf:             t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}
