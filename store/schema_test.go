package store

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestMigrationsRunInOrder(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		start   uint64 // version before migrate (0 = new file)
		failAt  int    // 1-based step that fails; 0 = none
		wantRun []int
		wantVer uint64
		wantErr error
	}{
		{"new file runs all", 0, 0, []int{1, 2, 3}, 3, nil},
		{"v1 runs the rest", 1, 0, []int{2, 3}, 3, nil},
		{"current runs none", 3, 0, nil, 3, nil},
		{"newer is refused", 4, 0, nil, 4, ErrNewerSchema},
		{"failure rolls back", 1, 3, []int{2, 3}, 1, boom},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := bolt.Open(filepath.Join(t.TempDir(), "m.db"), 0o600, &bolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if tc.start > 0 {
				writeVersion(t, db, tc.start)
			}
			var ran []int
			list := make([]migration, 3)
			for i := range list {
				step := i + 1
				list[i] = migration{fmt.Sprintf("step %d", step), func(tx *bolt.Tx) error {
					ran = append(ran, step)
					if _, err := tx.CreateBucketIfNotExists(fmt.Appendf(nil, "b%d", step)); err != nil {
						return err
					}
					if step == tc.failAt {
						return boom
					}
					return nil
				}}
			}
			err = migrate(db, list)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("migrate: %v, want %v", err, tc.wantErr)
			}
			if !slices.Equal(ran, tc.wantRun) {
				t.Errorf("ran %v, want %v", ran, tc.wantRun)
			}
			db.View(func(tx *bolt.Tx) error {
				if v, _ := readVersion(tx.Bucket(bucketMeta)); v != tc.wantVer {
					t.Errorf("version %d, want %d", v, tc.wantVer)
				}
				if tc.failAt > 0 && tx.Bucket([]byte("b2")) != nil {
					t.Error("failed migration left step 2's bucket behind")
				}
				return nil
			})
		})
	}
}

func writeVersion(t *testing.T, db *bolt.DB, v uint64) {
	t.Helper()
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(keyVersion, []byte{0, 0, 0, 0, 0, 0, 0, byte(v)})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSchemaVersionIsMigrationCount(t *testing.T) {
	o, _ := testOptions(t)
	s := openT(t, o)
	s.bdb().View(func(tx *bolt.Tx) error {
		if v, _ := readVersion(tx.Bucket(bucketMeta)); v != uint64(len(migrations)) {
			t.Errorf("version %d, want %d", v, len(migrations))
		}
		return nil
	})
}

// Environment variables that turn the test binary into a lock holder for
// TestInUseByOtherProcess.
const (
	envHoldDB  = "MAILGATE_STORE_TEST_HOLD_DB"
	envHoldKey = "MAILGATE_STORE_TEST_HOLD_KEY"
)

func TestMain(m *testing.M) {
	if db := os.Getenv(envHoldDB); db != "" {
		os.Exit(holdLock(db, os.Getenv(envHoldKey)))
	}
	os.Exit(m.Run())
}

// holdLock opens the store, says "ready" and keeps it open until stdin
// closes.
func holdLock(path, key string) int {
	s, err := Open(&Options{Path: path, KeyFile: key})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')
	if err := s.Close(); err != nil {
		return 1
	}
	return 0
}

func TestInUseByOtherProcess(t *testing.T) {
	o, _ := testOptions(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envHoldDB+"="+o.Path, envHoldKey+"="+o.KeyFile)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		cmd.Process.Kill()
		t.Fatalf("holder: %q %v", line, err)
	}
	_, err = Open(o)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d)", cmd.Process.Pid)) {
		t.Errorf("Open while held: %v (holder pid %d)", err, cmd.Process.Pid)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("holder: %v", err)
	}
	openT(t, o) // released
}
