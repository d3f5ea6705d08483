package mailstack

import "mailgate/internal/testenv"

// TB is the part of testing.TB that StartForTest uses, declared here so
// that this non-test file need not import package testing.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
	Logf(format string, args ...any)
	Fatal(args ...any)
	Error(args ...any)
	Cleanup(func())
}

// StartForTest starts a stack for a test or benchmark in a fresh temp dir
// and stops it when the test ends. When Dovecot or Postfix is missing it
// skips the test naming the packages to install, or fails it in CI
// (testenv.Missing).
func StartForTest(t TB, introspectionURL string) *Stack {
	t.Helper()
	if err := Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	testenv.NeedRoot(t)
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
