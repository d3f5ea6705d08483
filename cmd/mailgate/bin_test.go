package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"mailgate/internal/proxytest"
	"mailgate/internal/testenv"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// mailgateBinary builds the real binary once per test run, so tests run
// mailgate exactly as an admin does. It has the race detector when the
// tests have it, so the daemon's races fail the tests too.
func mailgateBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "mailgate-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "mailgate")
		args := []string{"build", "-o", binPath}
		if proxytest.RaceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			binErr = &buildError{err: err, out: string(out)}
		}
	})
	if binErr != nil {
		t.Fatalf("go build: %v", binErr)
	}
	return binPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// runM runs the tests and then removes the built binary, which
// testscript.Main (it exits the process) would otherwise leave behind.
type runM struct{ m *testing.M }

func (r runM) Run() int {
	defer func() {
		if binDir != "" {
			os.RemoveAll(binDir)
		}
	}()
	return r.m.Run()
}

// needCommand skips when a client program is missing; .ci/deps installs
// them, so CI never skips.
func needCommand(t *testing.T, name, debianPackage string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		testenv.Missing(t, "%s not installed (Debian package %s)", name, debianPackage)
	}
}
