package alerts

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docBlock returns the one fenced block of lang in docs/alerts.md.
func docBlock(t *testing.T, lang string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "alerts.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)\n```"+lang+"\n(.*?)\n```\n").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) != 1 {
		t.Fatalf("%d %s blocks in docs/alerts.md, want 1", len(blocks), lang)
	}
	return blocks[0][1]
}

// TestDocSnippets runs the signature checks of docs/alerts.md, in shell
// with openssl and in Python, against Sign: a good signature passes, a
// changed body does not. CI installs openssl and python3 (.ci/deps).
func TestDocSnippets(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "webhook.secret")
	os.WriteFile(secretFile, []byte("6f1c0ffee-secret\n"), 0o600)
	body := []byte(`{"mailbox":"bob@contoso.com","state":"needs_relink","reason":"invalid_grant","time":"2026-11-25T09:14:03Z"}`)
	os.WriteFile(filepath.Join(dir, "body.json"), body, 0o600)
	os.WriteFile(filepath.Join(dir, "changed.json"), append(body, ' '), 0o600)
	sig := Sign([]byte("6f1c0ffee-secret"), body)

	sh := strings.Replace(docBlock(t, "sh"), "/etc/mailgate/webhook.secret", secretFile, 1)
	py := docBlock(t, "python") + "\nimport sys\nsys.exit(0 if valid(sys.argv[1], open(sys.argv[2], 'rb').read(), sys.argv[3]) else 1)\n"
	for _, tc := range []struct {
		name string
		cmd  func(bodyFile string) *exec.Cmd
	}{
		{"shell", func(b string) *exec.Cmd {
			return exec.Command("sh", "-c", strings.Replace(sh, "body=body.json", "body="+b, 1), "sh", sig)
		}},
		{"python", func(b string) *exec.Cmd { return exec.Command("python3", "-c", py, secretFile, b, sig) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := tc.cmd("body.json")
			good.Dir = dir
			if out, err := good.CombinedOutput(); err != nil {
				t.Fatalf("good signature refused: %v\n%s", err, out)
			}
			bad := tc.cmd("changed.json")
			bad.Dir = dir
			if out, err := bad.CombinedOutput(); err == nil {
				t.Fatalf("changed body accepted:\n%s", out)
			}
		})
	}
}
