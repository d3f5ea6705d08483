package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse. It must never panic, must return
// either a config or an error, and every error must be a *config.Error (or
// a join of them) naming the file.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("..", "testdata", "config", "*.yaml"))
	for _, s := range seeds {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data)
		}
	}
	for _, s := range []string{"", "---\n", "a: &a [*a]\n", "imap: {listen: [{address: ':1', tls: none}]}\n",
		"hostname: [a\n", "oauth: {provider: generic, scopes: [~]}\n", "<<: {hostname: h}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v: want exactly one of a config and an error", c, err)
		}
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("error %q (%T) is not a *config.Error", err, err)
		}
		if c != nil {
			if _, err := c.TLSVersion(Listener{}); err != nil {
				t.Fatalf("valid config with bad tls.min_version: %v", err)
			}
		}
	})
}
