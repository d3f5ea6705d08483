package admin

import (
	"errors"
	"fmt"

	"mailgate/store"
)

// Exit codes an Error carries, as the CLI exits with them.
const (
	CodeFailed = 1 // the operation failed
	CodeUsage  = 2 // the request was wrong: bad arguments, unknown operation
)

// usageHint is the hint of every usage error.
const usageHint = `run "mailgate help" for usage`

// Error is an operation's failure as the admin sees it: a lowercase
// message, the exit code and a one-line hint that says what to do next.
// It crosses the admin socket as the reply's error, code and hint.
type Error struct {
	Code int    // CodeFailed or CodeUsage
	Hint string // may be empty
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Usagef reports a usage error (CodeUsage) with the usage hint.
func Usagef(format string, args ...any) error {
	return &Error{Code: CodeUsage, Err: fmt.Errorf(format, args...), Hint: usageHint}
}

// WithHint attaches a hint to an operational error (CodeFailed).
func WithHint(err error, hint string) error {
	return &Error{Code: CodeFailed, Err: err, Hint: hint}
}

// storeError gives store errors their exit codes and hints.
func storeError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrInvalid):
		return &Error{Code: CodeUsage, Err: err}
	case errors.Is(err, store.ErrNotFound):
		return WithHint(err, `list what exists with "mailgate password list MAILBOX"`)
	case errors.Is(err, store.ErrTooManyPasswords):
		return WithHint(err, "revoke an unused one first, or raise accounts.max_passwords")
	case errors.Is(err, store.ErrDuplicateName):
		return WithHint(err, "pick another -name, or revoke the old password first")
	case errors.Is(err, store.ErrUnsupported):
		return WithHint(err, "with PostgreSQL, back up with pg_dump (and keep the key file apart from it)")
	case errors.Is(err, store.ErrUnavailable):
		return WithHint(err, "check that PostgreSQL runs and that store.dsn or store.dsn_file names it")
	}
	return err
}
