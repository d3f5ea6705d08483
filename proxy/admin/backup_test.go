package admin_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"mailgate/proxy/admin"
	"mailgate/store"
)

// TestBackupKeepsStoreFiles: a backup aimed at the database or the key
// file itself (a slip of the admin's hand) is refused. Renamed over the
// database, the copy would replace the file the daemon holds open, and
// every change made after it would be lost at the next restart; renamed
// over the key file, the key would be gone for good.
func TestBackupKeepsStoreFiles(t *testing.T) {
	dir := t.TempDir()
	opts := &store.Options{Path: filepath.Join(dir, "mailgate.db"), KeyFile: filepath.Join(dir, "mailgate.key")}
	st, err := store.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	svc := admin.New(&admin.Options{Store: st})
	ctx := context.Background()
	for _, target := range []string{opts.Path, opts.KeyFile} {
		_, err := svc.Backup(ctx, admin.BackupArgs{Path: target})
		var ae *admin.Error
		if !errors.As(err, &ae) || ae.Code != admin.CodeFailed || ae.Hint == "" {
			t.Errorf("backup over %s: %#v, want a refusal with a hint", target, err)
		}
	}
	if _, err := svc.CreatePassword(ctx, admin.CreateArgs{Mailbox: "ann@example.com", Name: "phone"}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = store.Open(opts)
	if err != nil {
		t.Fatalf("reopen after the refused backups: %v", err)
	}
	defer st.Close()
	if ps, err := st.ListPasswords("ann@example.com"); err != nil || len(ps) != 1 {
		t.Fatalf("password created after the refused backups: %v, %v", ps, err)
	}
}
