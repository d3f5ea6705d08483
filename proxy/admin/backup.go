package admin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// BackupArgs are the arguments of store.backup.
type BackupArgs struct {
	Path string `json:"path"` // absolute: the daemon may run in another directory
}

// BackupResult names the copy written and its size.
type BackupResult struct {
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
}

// Backup (store.backup) writes a consistent copy of the database (bbolt
// Tx.WriteTo in a read transaction, so logins go on) next to the target
// and renames it into place, mode 0600 like the database itself.
func (s *Service) Backup(ctx context.Context, a BackupArgs) (BackupResult, error) {
	if !filepath.IsAbs(a.Path) {
		return BackupResult{}, Usagef("store backup: path must be absolute")
	}
	if s.store.Uses(a.Path) {
		return BackupResult{}, WithHint(fmt.Errorf("store backup: %s is the database or the key file itself", a.Path),
			"write the backup to a file of its own, such as /var/lib/mailgate/backup/mailgate-DATE.db")
	}
	tmp, err := os.CreateTemp(filepath.Dir(a.Path), ".mailgate-backup-*")
	if err != nil {
		return BackupResult{}, fmt.Errorf("store backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	n, err := s.store.Backup(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), a.Path)
	}
	if err != nil {
		return BackupResult{}, storeError(fmt.Errorf("store backup: %w", err))
	}
	s.logFor(ctx).Info("store backed up", "path", a.Path, "bytes", n)
	return BackupResult{Path: a.Path, Bytes: n}, nil
}
