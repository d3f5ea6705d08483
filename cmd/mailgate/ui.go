package main

// Output rules, after age's cmd/age/tui.go:
//   - errors and hints go to stderr, prefixed "mailgate: ", lower case, one
//     line each; a hint says what to do next;
//   - results go to stdout: human text by default, exactly one JSON value (or
//     one object per line for streams) with -json;
//   - exit 0 ok, 1 operational error, 2 usage error;
//   - secrets (app passwords) are printed once, to stdout only, never logged.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// exitError carries an exit code and an optional hint.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf reports a usage error (exit 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...), hint: "run \"mailgate help\" for usage"}
}

// withHint attaches a hint to an operational error (exit 1).
func withHint(err error, hint string) error {
	return &exitError{code: 1, err: err, hint: hint}
}

// report prints err and returns the process exit code.
func report(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	code, hint := 1, ""
	var ee *exitError
	if errors.As(err, &ee) {
		code, hint = ee.code, ee.hint
	}
	fmt.Fprintf(stderr, "mailgate: %v\n", err)
	if hint != "" {
		fmt.Fprintf(stderr, "mailgate: hint: %s\n", hint)
	}
	return code
}

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func warnf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mailgate: warning: "+format+"\n", args...)
}
