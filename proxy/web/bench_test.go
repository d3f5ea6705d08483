package web

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mailgate/proxy/admin"
	"mailgate/store"
)

// benchDir holds the benchmarks' store, on a RAM disk when there is one:
// filling 10,000 mailboxes is 20,000 synced writes. TestMain removes it.
var benchDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.st != nil {
		bench.st.Close()
	}
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

var bench struct {
	once sync.Once
	srv  *Server
	st   *store.Store
	err  error
}

// benchServer is a portal over a store of 10,000 mailboxes, each with one
// to three app passwords, half of them linked, some used; built once for
// every benchmark.
func benchServer(b *testing.B) *Server {
	b.Helper()
	bench.once.Do(func() { bench.srv, bench.err = newBenchServer(10000) })
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.srv
}

func newBenchServer(n int) (*Server, error) {
	parent := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		parent = "/dev/shm"
	}
	dir, err := os.MkdirTemp(parent, "mailgate-web-bench-")
	if err != nil {
		return nil, err
	}
	benchDir = dir
	st, err := store.Open(&store.Options{Path: filepath.Join(dir, "db"), KeyFile: filepath.Join(dir, "key")})
	if err != nil {
		return nil, err
	}
	bench.st = st
	for i := range n {
		m := fmt.Sprintf("user%05d@example.com", i)
		for j := range 1 + i%3 {
			_, secret, err := st.CreatePassword(m, fmt.Sprint("device ", j), nil, time.Time{})
			if err != nil {
				return nil, err
			}
			if (i+j)%3 == 0 {
				if _, err := st.Verify(m, secret, store.ScopeIMAP, "192.0.2.1"); err != nil {
					return nil, err
				}
			}
		}
		if i%2 == 0 {
			if err := st.SaveRefreshToken("microsoft", m, "rt"); err != nil {
				return nil, err
			}
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := admin.New(&admin.Options{Store: st, Settings: testSettings, Logger: log})
	return New(&Options{Admin: svc, SignIn: newFakeSignIn(), Admins: []string{"it@example.com"},
		Settings: testSettings, Logger: log})
}

// benchPage serves path to a signed-in mailbox b.N times, as the server
// spends it (no network).
func benchPage(b *testing.B, srv *Server, mailbox, path, want string) {
	id, _ := srv.mem.newSession(User{Mailbox: mailbox, AuthTime: time.Now()}, false)
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Cookie", sessionCookie+"="+id)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
		if !strings.Contains(w.Body.String(), want) {
			b.Fatalf("page lacks %q", want)
		}
	}
}

// BenchmarkAdminPage renders a page of /admin at 10,000 mailboxes (goal:
// under 50 ms).
func BenchmarkAdminPage(b *testing.B) {
	srv := benchServer(b)
	b.Run("first", func(b *testing.B) {
		benchPage(b, srv, "it@example.com", "/admin", `<tr data-mailbox="user00049@example.com">`)
	})
	b.Run("last", func(b *testing.B) {
		benchPage(b, srv, "it@example.com", "/admin?page=200", `<tr data-mailbox="user09999@example.com">`)
	})
	b.Run("search", func(b *testing.B) {
		benchPage(b, srv, "it@example.com", "/admin?q=user0999", `<tr data-mailbox="user09990@example.com">`)
	})
}

// BenchmarkUserPage renders a user's page, with the same 10,000
// mailboxes in the store (goal: under 5 ms).
func BenchmarkUserPage(b *testing.B) {
	srv := benchServer(b)
	benchPage(b, srv, "user00005@example.com", "/", "device 2")
}
