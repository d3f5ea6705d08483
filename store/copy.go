package store

import (
	"context"
	"crypto/hmac"
	"fmt"
)

// CopyStats counts what Copy copied.
type CopyStats struct {
	Passwords, Tokens int
}

// Copy copies everything (passwords with their hashes and last use, links
// with their sealed tokens and state; the key check value is already the
// same, or Copy refuses) from src to dst, both opened with the same key
// file. Records are copied as they are, never re-sealed: hashes and
// sealed tokens are the same bytes in both backends. It refuses a dst that
// already holds passwords or tokens (ErrNotEmpty). Pending last uses of src
// are flushed first.
func Copy(ctx context.Context, dst, src *Store) (CopyStats, error) {
	if !hmac.Equal(dst.keys.check, src.keys.check) {
		return CopyStats{}, fmt.Errorf("copy: %w: source and target were opened with different key files", ErrKeyMismatch)
	}
	if err := src.Flush(); err != nil {
		return CopyStats{}, fmt.Errorf("copy: %w", err)
	}
	d, err := src.be.dump(ctx)
	if err != nil {
		return CopyStats{}, fmt.Errorf("copy: read source: %w", err)
	}
	if err := dst.be.restore(ctx, d); err != nil {
		return CopyStats{}, fmt.Errorf("copy: write target: %w", err)
	}
	return CopyStats{Passwords: len(d.passwords), Tokens: len(d.tokens)}, nil
}
