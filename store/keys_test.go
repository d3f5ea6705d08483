package store

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestKeyFileModeRefused: a key file that group or others can read or write
// is refused, as ssh refuses such a private key, with the chmod that fixes
// it; 0600 and 0400 open.
func TestKeyFileModeRefused(t *testing.T) {
	o, _ := testOptions(t)
	openT(t, o).Close() // creates the key file 0600
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o620, 0o602, 0o610} {
		if err := os.Chmod(o.KeyFile, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Open(o)
		if !errors.Is(err, ErrKeyFileMode) || !strings.Contains(err.Error(), "chmod 600 "+o.KeyFile) {
			t.Errorf("key file mode %04o: err = %v, want ErrKeyFileMode naming chmod 600 and the file", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if err := os.Chmod(o.KeyFile, mode); err != nil {
			t.Fatal(err)
		}
		s, err := Open(o)
		if err != nil {
			t.Fatalf("key file mode %04o: %v", mode, err)
		}
		s.Close()
	}
}
