package proxytest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"mailgate/proxy"
)

func TestFail2banFilter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "README.md")
	doc := "text\n```\n[Definition]\nfailregex = ^a (?:x=<HOST>)$\n            ^b <HOST>$\nignoreregex =\n```\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	res := Fail2banFilter(t, path)
	if len(res) != 2 {
		t.Fatalf("got %d regexps, want 2 (continuation line included, ignoreregex not)", len(res))
	}
	m := res[1].FindStringSubmatch("b 2001:db8::1")
	if m == nil || m[res[1].SubexpIndex("host")] != "2001:db8::1" {
		t.Fatalf("host group: %q", m)
	}
}

func TestRefuseAll(t *testing.T) {
	if _, err := (RefuseAll{}).Authenticate(context.Background(), &proxy.LoginRequest{}); !errors.Is(err, proxy.ErrAuthFailed) {
		t.Fatalf("err = %v, want ErrAuthFailed", err)
	}
}
