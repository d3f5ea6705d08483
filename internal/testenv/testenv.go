// Package testenv decides what a test does when a part it needs is
// missing here: Dovecot, Postfix, PostgreSQL, promtool, a client program
// or root. Outside CI the test is skipped with what to install. In CI
// (.ci/run sets MAILGATE_CI after .ci/deps installed everything) it fails
// instead: a broken install must not turn into a green run that tested
// less.
package testenv

import "os"

// TB is the part of testing.TB these helpers use, declared here so that
// test helpers outside _test files need not import package testing.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// InCI reports whether the tests run under .ci/run.
func InCI() bool { return os.Getenv("MAILGATE_CI") != "" }

// Missing skips t outside CI and fails it in CI, with the reason.
func Missing(t TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("missing in CI, where .ci/deps installs it: "+format, args...)
		return
	}
	t.Skipf(format, args...)
}

// NeedRoot is Missing unless the tests run as root (Postfix refuses to run
// otherwise; CI runs as root).
func NeedRoot(t TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root: Postfix refuses to run otherwise")
	}
}
