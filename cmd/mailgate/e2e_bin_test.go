package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The end-to-end tests (e2e_*_test.go) run the real mailgate binary, built
// once per test binary run exactly as an admin builds it, against real
// Dovecot and Postfix (proxy/mailstack) and the in-process identity provider
// (proxy/oauth/oauthtest), and drive it with real clients.

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// mailgateBin builds cmd/mailgate once (with -race when the tests run with
// it, so the daemon's races fail the test too) and returns the binary.
func mailgateBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "mailgate-e2e-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "mailgate")
		args := []string{"build", "-o", buildBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, ".")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = &buildError{err: err, out: string(out)}
		}
	})
	if buildErr != nil {
		t.Fatalf("go build mailgate: %v", buildErr)
	}
	return buildBin
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// cleanupBuild removes the binary after the last test; TestMain calls it.
func cleanupBuild() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// runM runs the tests and then removes the build directory, which
// testscript.Main (it exits the process) would otherwise leave behind.
type runM struct{ m *testing.M }

func (r runM) Run() int {
	defer cleanupBuild()
	return r.m.Run()
}
