package store

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/chacha20poly1305"
)

// keyFileSize is the size of the master key file: 256 random bits.
const keyFileSize = 32

// HKDF info strings. Each purpose gets its own key, so the app-password key and
// the token key are independent (docs/clients.md, "Token encryption independent
// of client passwords": token encryption must not depend on the client's
// password, nor the other way round).
const (
	infoAppPassword  = "mailgate app-password v1"
	infoRefreshToken = "mailgate refresh-token v1"
	infoKeyCheck     = "mailgate key-check v1"
	keyCheckLabel    = "mailgate key check"
)

// keys holds the keys derived from the key file.
type keys struct {
	pwMAC    []byte      // HMAC-SHA-256 key for app-password hashes
	token    cipher.AEAD // XChaCha20-Poly1305 for refresh tokens
	tokenKID string      // id of the token key, stored with each sealed token
	check    []byte      // key check value stored in the database (keyCheckValue)
}

// loadKeys reads the key file, creating it first if it does not exist, and
// derives the purpose keys from it.
func loadKeys(path string) (*keys, error) {
	master, err := readOrCreateKeyFile(path)
	if err != nil {
		return nil, err
	}
	return deriveKeys(master)
}

func deriveKeys(master []byte) (*keys, error) {
	pw, err := hkdf.Key(sha256.New, master, nil, infoAppPassword, 32)
	if err != nil {
		return nil, fmt.Errorf("derive app-password key: %w", err)
	}
	tk, err := hkdf.Key(sha256.New, master, nil, infoRefreshToken, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("derive token key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(tk)
	if err != nil {
		return nil, fmt.Errorf("token cipher: %w", err)
	}
	kc, err := keyCheckValue(master)
	if err != nil {
		return nil, err
	}
	return &keys{pwMAC: pw, token: aead, tokenKID: keyID(tk), check: kc}, nil
}

// keyCheckValue is what the database records about the key: the HMAC of a
// fixed label under a key of its own derived from the key file. It tells
// whether two key files are the same and reveals nothing about either (the
// HKDF subkey is independent of the password and token keys).
func keyCheckValue(master []byte) ([]byte, error) {
	ck, err := hkdf.Key(sha256.New, master, nil, infoKeyCheck, 32)
	if err != nil {
		return nil, fmt.Errorf("derive key check: %w", err)
	}
	m := hmac.New(sha256.New, ck)
	m.Write([]byte(keyCheckLabel))
	return m.Sum(nil), nil
}

// openKeys reads the key file and checks it against the database's key
// check value. A missing key file is created only when the database holds
// no key check and no data: a new key over data sealed under another key
// would make every password and token unusable. Several instances
// starting on a new database agree on the first key check stored.
func openKeys(be backend, path string) (*keys, error) {
	stored, hasData, err := be.keyCheck()
	if err != nil {
		return nil, fmt.Errorf("read key check: %w", err)
	}
	master, err := readKeyFileSized(path)
	if errors.Is(err, fs.ErrNotExist) && (stored != nil || hasData) {
		return nil, fmt.Errorf("%w: key file %s is missing and the database already holds data; "+
			"copy the key file the database was written with (from another instance or a backup)", ErrKeyMismatch, path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		master, err = readOrCreateKeyFile(path)
	}
	if err != nil {
		return nil, err
	}
	k, err := deriveKeys(master)
	if err != nil {
		return nil, err
	}
	if stored, err = be.setKeyCheck(k.check); err != nil {
		return nil, fmt.Errorf("store key check: %w", err)
	}
	if !hmac.Equal(stored, k.check) {
		return nil, fmt.Errorf("%w: key file %s is not the one the database was written with; "+
			"use the same key file on every instance", ErrKeyMismatch, path)
	}
	return k, nil
}

// keyID names a key without revealing it: the first 8 bytes of its SHA-256,
// in hex. Stored with each sealed token so that a future key rotation knows
// which key opens which record.
func keyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// ErrKeyFileMode means the key file can be read or written by users other
// than its owner. Like ssh with a private key, the store then refuses it
// rather than use a key that others may have copied or replaced.
var ErrKeyFileMode = errors.New("key file is open to group or others")

func readOrCreateKeyFile(path string) ([]byte, error) {
	b, err := readKeyFileSized(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createKeyFile(path); err != nil {
			return nil, err
		}
		b, err = readKeyFileSized(path)
	}
	return b, err
}

// readKeyFileSized reads the key file and checks its size.
func readKeyFileSized(path string) ([]byte, error) {
	b, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) != keyFileSize {
		return nil, fmt.Errorf("%w: key file %s has %d bytes, want %d", ErrInvalid, path, len(b), keyFileSize)
	}
	return b, nil
}

// readKeyFile reads the key file after checking the mode of the file it
// opened (not of whatever the path names a moment later).
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run: chmod 600 %s", ErrKeyFileMode, path, perm, path)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	return b, nil
}

// createKeyFile writes 32 random bytes to a temporary file and links it into
// place: the key appears complete or not at all, and if two processes race
// the first link wins and both then read the same key.
func createKeyFile(path string) error {
	dir := filepath.Dir(path)
	if err := ensureDir(dir); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".mailgate-key-*")
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	// CreateTemp makes the file 0600 already; Chmod states it.
	err = errors.Join(f.Chmod(0o600), writeRandom(f), f.Sync(), f.Close())
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create key file: %w", err)
	}
	return nil
}

func writeRandom(f *os.File) error {
	b := make([]byte, keyFileSize)
	rand.Read(b) // never fails since Go 1.24; it crashes the program instead
	_, err := f.Write(b)
	return err
}
