package mailstack

import "os"

// TB is the part of testing.TB that StartForTest uses, declared here so
// that this non-test file need not import package testing.
type TB interface {
	Helper()
	Skip(args ...any)
	Skipf(format string, args ...any)
	TempDir() string
	Logf(format string, args ...any)
	Fatal(args ...any)
	Error(args ...any)
	Cleanup(func())
}

// StartForTest starts a stack for a test or benchmark in a fresh temp dir
// and stops it when the test ends. It skips the test, naming the packages
// to install, when Dovecot or Postfix is missing; .ci/deps installs them
// so CI never skips.
func StartForTest(t TB, introspectionURL string) *Stack {
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
