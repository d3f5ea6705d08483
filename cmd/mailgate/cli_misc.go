package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

func cmdConfigCheck(e *env, args []string) error {
	f := newFlags("config check", false)
	if _, err := f.parse(args, exactly(0), ""); err != nil {
		return err
	}
	cfg, err := loadConfig(f.config)
	if err != nil {
		return err
	}
	if _, err := loadCerts(cfg); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: ok\n", cfg.File)
	return nil
}

func cmdStoreBackup(e *env, args []string) error {
	f := newFlags("store backup", true)
	rest, err := f.parse(args, exactly(1), "FILE")
	if err != nil {
		return err
	}
	// The daemon may run in another directory: send it an absolute path.
	path, err := filepath.Abs(rest[0])
	if err != nil {
		return err
	}
	raw, err := e.call(f, "store.backup", map[string]string{"path": path}, nil)
	if err != nil {
		return err
	}
	if f.json {
		_, err = fmt.Fprintf(e.stdout, "%s\n", raw)
		return err
	}
	var r backupResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d bytes); keep it with the key file, without which its tokens cannot be read\n", r.Path, r.Bytes)
	return nil
}

type backupResult struct {
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
}

// opStoreBackup writes a consistent copy of the database (bbolt Tx.WriteTo
// in a read transaction, so logins go on) next to the target and renames it
// into place, mode 0600 like the database itself.
func opStoreBackup(ctx context.Context, s *service, args json.RawMessage, _ conv) (any, error) {
	var a struct {
		Path string `json:"path"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(a.Path) {
		return nil, usageErrorf("store backup: path must be absolute")
	}
	tmp, err := os.CreateTemp(filepath.Dir(a.Path), ".mailgate-backup-*")
	if err != nil {
		return nil, fmt.Errorf("store backup: %w", err)
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
		return nil, fmt.Errorf("store backup: %w", err)
	}
	return backupResult{Path: a.Path, Bytes: n}, nil
}
