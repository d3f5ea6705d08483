package main

// Output rules, after age's cmd/age/tui.go:
//   - errors and hints go to stderr, prefixed "mailgate: ", lower case, one
//     line each; a hint says what to do next;
//   - results go to stdout: human text by default, exactly one JSON value (or
//     one object per line for streams) with -json;
//   - exit 0 ok, 1 operational error, 2 usage error;
//   - secrets (app passwords) are printed once, to stdout only, never logged.
//
// Errors with an exit code and a hint are admin.Error values, whether the
// admin operation ran here, in the daemon, or the CLI itself refused.

import (
	"errors"
	"fmt"
	"io"

	"mailgate/proxy/admin"
)

// usageErrorf reports a usage error (exit 2).
func usageErrorf(format string, args ...any) error { return admin.Usagef(format, args...) }

// withHint attaches a hint to an operational error (exit 1).
func withHint(err error, hint string) error { return admin.WithHint(err, hint) }

// report prints err and returns the process exit code.
func report(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	code, hint := admin.CodeFailed, ""
	var ae *admin.Error
	if errors.As(err, &ae) {
		code, hint = ae.Code, ae.Hint
	}
	fmt.Fprintf(stderr, "mailgate: %v\n", err)
	if hint != "" {
		fmt.Fprintf(stderr, "mailgate: hint: %s\n", hint)
	}
	return code
}
