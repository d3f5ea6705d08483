package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"mailgate/internal/fakeidp"
	"mailgate/proxy/admin"
	"mailgate/proxy/oauth"
	"mailgate/store"
)

func openStore(t testing.TB) *store.Store {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(&store.Options{Path: filepath.Join(dir, "db"), KeyFile: filepath.Join(dir, "key")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// recordingListener hands every accepted connection to conns as well, so a
// test can check that the server closed it.
type recordingListener struct {
	net.Listener
	conns chan net.Conn
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.conns <- c
	}
	return c, err
}

// serve serves h on a fresh admin socket and returns its path and the
// server's side of each connection.
func serve(t *testing.T, h admin.Handler) (string, <-chan net.Conn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := admin.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 16)
	srv := &admin.Server{Handler: h}
	done := make(chan error)
	go func() { done <- srv.Serve(recordingListener{ln, conns}) }()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path, conns
}

func dial(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// converse sends request lines on a new connection and returns the first
// line the server answers.
func converse(t *testing.T, path string, lines ...string) string {
	t.Helper()
	c := dial(t, path)
	for _, l := range lines {
		fmt.Fprintln(c, l)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reply to %q: %v", lines, err)
	}
	return strings.TrimSpace(line)
}

// waitGoroutines waits until no more goroutines run than base.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, baseline %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDisconnectEndsConversation: an admin who stops "account link"
// (Ctrl-C at the paste prompt, or while the device code waits) leaves
// nothing behind in the daemon: the operation ends, the connection is
// closed and the goroutine count is back to its baseline.
func TestDisconnectEndsConversation(t *testing.T) {
	for _, tt := range []struct {
		name  string
		link  admin.LinkFlow
		event string
	}{
		{"auth code, waiting for the pasted URL", admin.LinkAuthCode, "authorize_url"},
		{"device code, waiting for the sign-in", admin.LinkDevice, "user_code"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			idp, err := fakeidp.NewServer(nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(idp.Close)
			st := openStore(t)
			m, err := oauth.New(&oauth.Options{Provider: oauth.Generic, ClientID: "test",
				TokenURL: idp.TokenURL(), DeviceAuthURL: idp.DeviceAuthURL(), AuthURL: idp.AuthURL(), Store: st,
				HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}})
			if err != nil {
				t.Fatal(err)
			}
			svc := admin.New(&admin.Options{Store: st, OAuth: m, Link: tt.link})
			path, conns := serve(t, svc)
			base := runtime.NumGoroutine()

			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(c, `{"op":"account.link","args":{"mailbox":"ann@example.com"}}`)
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || !strings.Contains(line, tt.event) {
				t.Fatalf("first line %q: %v", line, err)
			}
			served := <-conns
			c.Close() // the admin's Ctrl-C
			waitGoroutines(t, base)
			if err := served.SetDeadline(time.Time{}); !errors.Is(err, net.ErrClosed) {
				t.Errorf("the server's side of the connection is open: %v", err)
			}
			if as, err := st.Accounts(); err != nil || len(as) != 0 {
				t.Errorf("accounts after the admin left: %v %v", as, err)
			}
		})
	}
}

// TestStrictRequests: unknown fields and data after the JSON value are
// refused with the usage exit code, in the request line and in the
// operation's arguments, as is an unknown operation.
func TestStrictRequests(t *testing.T) {
	svc := admin.New(&admin.Options{Store: openStore(t)})
	path, _ := serve(t, svc)
	for _, tt := range []struct{ line, want string }{
		{`{"op":"password.list","args":{"mailbox":"a@example.com","admin":true}}`, `"error":"bad arguments: json: unknown field \"admin\""`},
		{`{"op":"password.list","args":{"mailbox":"a@example.com"}} garbage`, `"error":"bad admin request"`},
		{`{"op":"password.list","args":{"mailbox":"a@example.com"},"sudo":1}`, `"error":"bad admin request"`},
		{`{"op":"password.list","args":["a@example.com"]}`, `"error":"bad arguments: json: cannot unmarshal array`},
		{`{"op":"password.steal"}`, `"error":"unknown admin operation \"password.steal\""`},
		{`not json`, `"error":"bad admin request"`},
	} {
		got := converse(t, path, tt.line)
		if !strings.Contains(got, tt.want) || !strings.Contains(got, `"code":2`) {
			t.Errorf("%s\n got %s\nwant %s and code 2", tt.line, got, tt.want)
		}
	}
	// Data after the arguments object can only reach Do from a caller
	// other than the socket, whose request decoder stops it first.
	for _, args := range []string{`{"mailbox":""} {}`, `{"mailbox":""}]`, `{"mailbox":"","id":"x"}`} {
		_, err := svc.Do(context.Background(), "password.list", json.RawMessage(args), nil)
		var ae *admin.Error
		if !errors.As(err, &ae) || ae.Code != admin.CodeUsage {
			t.Errorf("Do(password.list, %s): %v, want a usage error", args, err)
		}
	}
	if _, err := svc.Do(context.Background(), "password.list", nil, nil); err != nil {
		t.Errorf("no arguments: %v", err)
	}
}

// TestCall runs operations through the socket with the client side the
// CLI uses: results come back as their JSON, errors with their code and
// hint.
func TestCall(t *testing.T) {
	svc := admin.New(&admin.Options{Store: openStore(t), Domains: func() []string { return []string{"example.com"} }})
	path, _ := serve(t, svc)
	ctx := context.Background()
	raw, err := admin.Call(ctx, dial(t, path), "password.create", admin.CreateArgs{Mailbox: "ann@example.com", Name: "phone"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var created admin.CreateResult
	if err := json.Unmarshal(raw, &created); err != nil || created.Secret == "" || created.ID == "" {
		t.Fatalf("created %s: %v", raw, err)
	}
	_, err = admin.Call(ctx, dial(t, path), "password.create", admin.CreateArgs{Mailbox: "ann@example.com", Name: "phone"}, nil)
	var ae *admin.Error
	if !errors.As(err, &ae) || ae.Code != admin.CodeFailed || !strings.Contains(ae.Hint, "pick another -name") {
		t.Fatalf("duplicate name: %#v", err)
	}
	raw, err = admin.Call(ctx, dial(t, path), "password.list", admin.ListArgs{}, nil)
	if err != nil || !strings.Contains(string(raw), created.ID) || strings.Contains(string(raw), created.Secret) {
		t.Fatalf("list: %s %v", raw, err)
	}
}

// TestListen: the socket is born 0600, and a second daemon on a live
// socket is refused while a stale file is replaced.
func TestListen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := admin.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v: %v", fi.Mode(), err)
	}
	go (&admin.Server{Handler: admin.New(&admin.Options{Store: openStore(t)})}).Serve(ln)
	if _, err := admin.Listen(path); err == nil || !strings.Contains(err.Error(), "another mailgate daemon") {
		t.Fatalf("second Listen: %v", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln, err = admin.Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln.Close()
}

// TestListenKeepsOtherFiles: a path that names anything but a socket (a
// config that points admin.socket at the database, the key file or the
// config itself) is refused and the file is left as it was. Only a stale
// socket may be removed: the daemon holds the database open, so removing
// it would lose every change made until the next restart.
func TestListenKeepsOtherFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailgate.db")
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ln, err := admin.Listen(path); err == nil {
		ln.Close()
		t.Fatal("Listen on a regular file: no error")
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "data" {
		t.Fatalf("file at the socket path after Listen: %q, %v", b, err)
	}
}
