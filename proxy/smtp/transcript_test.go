package smtp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailgate/proxy"
)

// TestTranscripts replays the conversations under testdata/smtp: "C:" lines
// are sent, "S:" lines must be the next line received exactly, "TLS"
// completes a STARTTLS handshake, and "mode:" picks the listener.
func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("../../testdata/smtp/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			runTranscript(t, string(data))
		})
	}
}

func runTranscript(t *testing.T, script string) {
	e := newEnv(t, envConfig{})
	var c *client
	for n, line := range strings.Split(strings.TrimSuffix(script, "\n"), "\n") {
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "mode: "):
			c = e.dial(proxy.TLSMode(strings.TrimPrefix(line, "mode: ")))
		case c == nil:
			t.Fatalf("line %d: no mode: line before %q", n+1, line)
		case line == "TLS":
			c.handshake(e.clientTC)
		case strings.HasPrefix(line, "C:"):
			c.send(strings.TrimPrefix(strings.TrimPrefix(line, "C:"), " "))
		case strings.HasPrefix(line, "S:"):
			want := strings.TrimPrefix(strings.TrimPrefix(line, "S:"), " ")
			if got := c.line(); got != want {
				t.Fatalf("line %d: got %q, want %q", n+1, got, want)
			}
		default:
			t.Fatalf("line %d: cannot parse %q", n+1, line)
		}
	}
}
