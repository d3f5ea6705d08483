package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"mailgate/proxy/admin"
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
	raw, err := e.call(f, "store.backup", admin.BackupArgs{Path: path}, nil)
	if err != nil {
		return err
	}
	if f.json {
		_, err = fmt.Fprintf(e.stdout, "%s\n", raw)
		return err
	}
	var r admin.BackupResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d bytes); keep it with the key file, without which its tokens cannot be read\n", r.Path, r.Bytes)
	return nil
}
