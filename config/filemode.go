package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// Who besides a file's owner may hold a key or secret, by mode bits. Like ssh
// with a private key, mailgate refuses to start with such a file open to
// others: they could copy the key or put in their own.
const (
	// ownerOnly is for store.key_file, which mailgate creates 0600 itself.
	ownerOnly fs.FileMode = 0o700
	// groupRead is for the OAuth secret files, which the install guide has
	// owned by root with group mailgate, mode 0640: the daemon reads a file
	// that it cannot change. Group write and any access by others are
	// refused.
	groupRead fs.FileMode = 0o740
)

// checkKeyFile checks store.key_file if it exists; a missing one is created
// 0600 by the store at its first use.
func (d *doc) checkKeyFile(c *Config) error {
	fi, err := os.Stat(c.Store.KeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = checkMode(c.Store.KeyFile, fi.Mode(), ownerOnly)
	}
	if err != nil {
		return d.wrap("store.key_file", err)
	}
	return nil
}

// readPrivate reads a secret file after checking the mode of the file it
// opened against allowed.
func readPrivate(path string, allowed fs.FileMode) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *fs.PathError names the file
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory", path)
	}
	if err := checkMode(path, fi.Mode(), allowed); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// checkMode refuses permission bits outside allowed, and says which chmod
// takes them away.
func checkMode(path string, mode, allowed fs.FileMode) error {
	perm := mode.Perm()
	extra := perm &^ allowed
	if extra == 0 {
		return nil
	}
	var who []string
	if extra&0o070 != 0 {
		who = append(who, "group")
	}
	if extra&0o007 != 0 {
		who = append(who, "others")
	}
	return fmt.Errorf("%s is open to %s (mode %04o); run: chmod %o %s",
		path, strings.Join(who, " and "), perm, perm&allowed|0o400, path)
}
