package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailgate/internal/fakeidp"
	"mailgate/internal/proxytest"
	"mailgate/proxy/admin"
	"mailgate/proxy/oauth"
	"mailgate/store"
)

// logBuffer collects JSON log lines; the logger writes from the socket
// server's goroutines too.
type logBuffer struct{ proxytest.LogBuffer }

// line returns the log record whose message is msg; it fails the test if
// there is none.
func (l *logBuffer) line(t *testing.T, msg string) map[string]any {
	t.Helper()
	all := l.String()
	for _, s := range strings.Split(all, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(s), &rec) == nil && rec["msg"] == msg {
			return rec
		}
	}
	t.Fatalf("no log line %q in:\n%s", msg, all)
	return nil
}

// checkActor fails unless rec names who and from as the actor and user as
// the mailbox changed.
func checkActor(t *testing.T, rec map[string]any, who, from, user string) {
	t.Helper()
	if rec["by"] != who || rec["from"] != from || (user != "" && rec["user"] != user) {
		t.Errorf("%v: by=%v from=%v user=%v, want by=%s from=%s user=%s",
			rec["msg"], rec["by"], rec["from"], rec["user"], who, from, user)
	}
}

// approveConv approves the device code of account.link at the fake
// identity provider, as the user signing in would.
type approveConv struct {
	idp     *fakeidp.Server
	mailbox string
}

func (c approveConv) Event(v any) error {
	ev, ok := v.(admin.DeviceCodeEvent)
	if !ok {
		return errors.New("not a device code")
	}
	return c.idp.ApproveDevice(ev.UserCode, c.mailbox)
}

func (c approveConv) Read() (string, error) { return "", errors.New("nothing to read") }

// TestActorLogged: every change is logged with who asked for it (by) and
// from where (from), as the portal names them with WithActor.
func TestActorLogged(t *testing.T) {
	idp, err := fakeidp.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	st := openStore(t)
	m, err := oauth.New(&oauth.Options{Provider: oauth.Generic, ClientID: "test", Store: st,
		TokenURL: idp.TokenURL(), DeviceAuthURL: idp.DeviceAuthURL(),
		VerifyMailbox: func(context.Context, string, string) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	svc := admin.New(&admin.Options{Store: st, OAuth: m, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	const who, from = "it@example.com", "192.0.2.9"
	ctx := admin.WithActor(context.Background(), admin.Actor{Who: who, Remote: from})

	if _, err := svc.Link(ctx, admin.LinkArgs{Mailbox: "ann@example.com"}, approveConv{idp, "ann@example.com"}); err != nil {
		t.Fatal(err)
	}
	checkActor(t, logs.line(t, "mailbox linked"), who, from, "ann@example.com")
	created, err := svc.CreatePassword(ctx, admin.CreateArgs{Mailbox: "ann@example.com", Name: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	checkActor(t, logs.line(t, "app password created"), who, from, "ann@example.com")
	if _, err := svc.RevokePassword(ctx, admin.RevokeArgs{Mailbox: "ann@example.com", ID: created.ID}); err != nil {
		t.Fatal(err)
	}
	checkActor(t, logs.line(t, "app password revoked"), who, from, "ann@example.com")
	if _, err := svc.RevokeAll(ctx, admin.RevokeAllArgs{Mailboxes: []string{"ann@example.com"}}); err != nil {
		t.Fatal(err)
	}
	checkActor(t, logs.line(t, "app passwords revoked"), who, from, "ann@example.com")
	if _, err := svc.Unlink(ctx, admin.UnlinkArgs{Mailbox: "ann@example.com"}); err != nil {
		t.Fatal(err)
	}
	checkActor(t, logs.line(t, "mailbox unlinked"), who, from, "ann@example.com")
	if _, err := svc.Backup(ctx, admin.BackupArgs{Path: filepath.Join(t.TempDir(), "backup.db")}); err != nil {
		t.Fatal(err)
	}
	checkActor(t, logs.line(t, "store backed up"), who, from, "")

	// Without an actor the line says that nobody was named.
	logs.Reset()
	if _, err := svc.CreatePassword(context.Background(), admin.CreateArgs{Mailbox: "bob@example.com", Name: "phone"}); err != nil {
		t.Fatal(err)
	}
	checkActor(t, logs.line(t, "app password created"), "unknown", "", "bob@example.com")
}

// TestActorCLI: operations from the admin socket and in-process calls are
// the CLI's; an in-process call keeps an actor its context names.
func TestActorCLI(t *testing.T) {
	logs := &logBuffer{}
	svc := admin.New(&admin.Options{Store: openStore(t), Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	path, _ := serve(t, svc)
	ctx := context.Background()
	if _, err := admin.Call(ctx, dial(t, path), "password.create", admin.CreateArgs{Mailbox: "ann@example.com", Name: "phone"}, nil); err != nil {
		t.Fatal(err)
	}
	checkActor(t, logs.line(t, "app password created"), "cli", "", "ann@example.com")

	logs.Reset()
	if _, err := svc.Call(ctx, "password.revoke-all", admin.RevokeAllArgs{Mailboxes: []string{"ann@example.com"}}, nil); err != nil {
		t.Fatal(err)
	}
	checkActor(t, logs.line(t, "app passwords revoked"), "cli", "", "ann@example.com")

	logs.Reset()
	ctx = admin.WithActor(ctx, admin.Actor{Who: "it@example.com", Remote: "192.0.2.9"})
	if _, err := svc.Call(ctx, "password.create", admin.CreateArgs{Mailbox: "ann@example.com", Name: "laptop"}, nil); err != nil {
		t.Fatal(err)
	}
	checkActor(t, logs.line(t, "app password created"), "it@example.com", "192.0.2.9", "ann@example.com")
}

// TestRevokeOtherMailboxID: revoking with the id of another mailbox's
// password is refused as not found, logged, and changes nothing: both
// mailboxes keep their passwords and no session is closed.
func TestRevokeOtherMailboxID(t *testing.T) {
	st := openStore(t)
	ann, annSecret, err := st.CreatePassword("ann@example.com", "phone", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	bob, _, err := st.CreatePassword("bob@example.com", "phone", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	sess := &checkingSessions{check: func() { t.Error("sessions closed by a refused revoke") }}
	logs := &logBuffer{}
	svc := admin.New(&admin.Options{Store: st, Sessions: sess, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	ctx := admin.WithActor(context.Background(), admin.Actor{Who: "bob@example.com", Remote: "192.0.2.9"})

	for _, id := range []string{ann.ID, strings.ToUpper(ann.ID), " " + ann.ID + " "} {
		r, err := svc.RevokePassword(ctx, admin.RevokeArgs{Mailbox: "bob@example.com", ID: id})
		if !errors.Is(err, store.ErrNotFound) || len(r.Revoked) != 0 {
			t.Errorf("revoke %q of ann as bob: %+v %v, want not found", id, r, err)
		}
	}
	if _, err := svc.RevokePassword(ctx, admin.RevokeArgs{Mailbox: "", ID: ann.ID}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("revoke without a mailbox: %v", err)
	}
	rec := logs.line(t, "app password revoke refused")
	checkActor(t, rec, "bob@example.com", "192.0.2.9", "bob@example.com")
	if rec["id"] != ann.ID {
		t.Errorf("refusal logged id %v, want %s", rec["id"], ann.ID)
	}
	for m, want := range map[string]string{"ann@example.com": ann.ID, "bob@example.com": bob.ID} {
		ps, err := st.ListPasswords(m)
		if err != nil || len(ps) != 1 || ps[0].ID != want {
			t.Errorf("%s after the refused revokes: %+v %v", m, ps, err)
		}
	}
	if _, err := st.Verify("ann@example.com", annSecret, store.ScopeIMAP, ""); err != nil {
		t.Errorf("ann's password stopped working: %v", err)
	}
}
