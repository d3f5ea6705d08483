package main

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// mailgatePkg is the command the benchmark measures: the binary users run.
const mailgatePkg = "mailgate/cmd/mailgate"

// profileHook is added to the mailgate build only when a profile is asked
// for (-cpuprofile, -heapprofile); it is not part of mailgate. The figures
// of every other run come from the plain binary.
//
//go:embed testdata/profilehook.go
var profileHook []byte

// buildMailgate builds cmd/mailgate into dir, with the race detector when
// this binary has it, and with the profile hook when profile is true. It
// needs the go command and a working directory inside the module, as
// "go run ./cmd/mailgate-bench" and "go test" have.
func buildMailgate(dir string, profile bool) (string, error) {
	bin := filepath.Join(dir, "mailgate")
	args := []string{"build", "-buildvcs=auto", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	if profile {
		overlay, err := writeOverlay(dir)
		if err != nil {
			return "", err
		}
		args = append(args, "-overlay", overlay)
	}
	t0 := time.Now()
	out, err := exec.Command("go", append(args, mailgatePkg)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", mailgatePkg, err, out)
	}
	logf("built %s (race %v, profile hook %v) in %v", mailgatePkg, raceEnabled, profile, time.Since(t0).Round(time.Millisecond))
	return bin, nil
}

// binaryRevision is the commit the binary was built from, as "go version
// -m" reads it from the build info, with "+modified" for a dirty tree; ""
// outside a git checkout.
func binaryRevision(bin string) string {
	out, _ := exec.Command("go", "version", "-m", bin).Output()
	rev, dirty := "", ""
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision="):
			rev = strings.TrimPrefix(f[1], "vcs.revision=")
		case len(f) == 2 && f[1] == "vcs.modified=true":
			dirty = "+modified"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}

// writeOverlay writes the profile hook and a go build -overlay file that
// adds it to package main of cmd/mailgate.
func writeOverlay(dir string) (string, error) {
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", mailgatePkg).Output()
	if err != nil {
		return "", fmt.Errorf("go list %s: %w", mailgatePkg, err)
	}
	pkgDir := string(out[:len(out)-1])
	hook := filepath.Join(dir, "profilehook.go")
	if err := os.WriteFile(hook, profileHook, 0o644); err != nil {
		return "", err
	}
	b, _ := json.Marshal(map[string]any{"Replace": map[string]string{
		filepath.Join(pkgDir, "zz_benchprofilehook.go"): hook}})
	overlay := filepath.Join(dir, "overlay.json")
	return overlay, os.WriteFile(overlay, b, 0o644)
}
