package store

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// crashHelperEnv names the directory of the store when the test binary runs
// as the crash helper (see TestCrashHelper).
const crashHelperEnv = "MAILGATE_STORE_CRASH_HELPER"

// TestCrashHelper is not a test on its own: TestCrashRecovery runs the test
// binary again with crashHelperEnv set, and this function then creates app
// passwords and logs in with earlier ones as fast as it can, printing each
// password once CreatePassword has returned (committed), until it is killed.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashHelperEnv)
	if dir == "" {
		return // run directly: nothing to do
	}
	s, err := Open(&Options{Path: filepath.Join(dir, "m.db"), KeyFile: filepath.Join(dir, "m.key"),
		MaxPasswords: 5, FlushInterval: time.Millisecond}) // flushes of last-used data race the kill too
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var issued [][2]string
	for i := 0; ; i++ {
		mailbox := fmt.Sprintf("u%d-%d@example.com", os.Getpid(), i)
		_, secret, err := s.CreatePassword(mailbox, "crash", nil, time.Time{})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Printf("ack %s %s\n", mailbox, secret) // stdout is unbuffered: one write per line
		issued = append(issued, [2]string{mailbox, secret})
		old := issued[rand.IntN(len(issued))]
		if _, err := s.Verify(old[0], old[1], ScopeIMAP, "127.0.0.1"); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
	}
}

// TestCrashRecovery kills the helper with SIGKILL at a random moment during
// a stream of password creations and logins, several times over the same
// file. After each kill the file passes bbolt's consistency check, and
// every password the helper acknowledged still verifies.
func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	var acked [][2]string
	for round := range 5 {
		got := runAndKill(t, dir, 1+rand.IntN(60))
		acked = append(acked, got...)
		checkBolt(t, filepath.Join(dir, "m.db"))
		s, err := Open(&Options{Path: filepath.Join(dir, "m.db"), KeyFile: filepath.Join(dir, "m.key"), MaxPasswords: 5})
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		for _, a := range acked {
			if _, err := s.Verify(a[0], a[1], ScopeIMAP, ""); err != nil {
				t.Errorf("round %d: acknowledged password of %s lost: %v", round, a[0], err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d acknowledged passwords survived 5 kills", len(acked))
}

// runAndKill starts the helper, waits for n acknowledgements plus a random
// moment, kills it with SIGKILL and returns every acknowledgement it printed.
func runAndKill(t *testing.T, dir string, n int) [][2]string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked [][2]string
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "ack" {
			acked = append(acked, [2]string{f[1], f[2]})
		} else if len(f) > 0 && f[0] == "error" {
			t.Fatalf("helper: %s", sc.Text())
		}
		if !killed && len(acked) >= n {
			time.Sleep(time.Duration(rand.IntN(5000)) * time.Microsecond)
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true // keep reading: lines already in the pipe were acknowledged too
		}
	}
	cmd.Wait()
	if !killed || len(acked) < n {
		t.Fatalf("helper ended by itself after %d acknowledgements", len(acked))
	}
	return acked
}

// checkBolt runs bbolt's own consistency check on the file.
func checkBolt(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, ReadOnly: true})
	if err != nil {
		t.Fatalf("open after kill -9: %v", err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() { // drain: Check's goroutine sends every problem
			t.Errorf("bbolt check after kill -9: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
