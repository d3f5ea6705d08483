package config

import (
	"errors"
	"strconv"
	"strings"
)

// ErrEmpty is returned for a file with no YAML document, or only comments.
var ErrEmpty = errors.New("empty config")

// ErrMultipleDocuments is returned when the file holds a second YAML
// document ("---"): mailgate reads exactly one, and silently ignoring the
// rest would hide settings the operator believes are in force.
var ErrMultipleDocuments = errors.New("second yaml document; a config holds exactly one")

// Error is a problem found in a config file. It prints as
// "file:line: key: problem", leaving out the parts it does not know.
type Error struct {
	File string // as given to Load or Parse
	Line int    // 1-based; 0 when the problem has no place in the file
	Key  string // dotted path such as "imap.listen[0].tls"; "" for the whole file
	Err  error  // the problem
}

var _ error = (*Error)(nil)

// Error formats the problem as "file:line: key: problem".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the problem, so errors.Is sees sentinels and fs errors.
func (e *Error) Unwrap() error { return e.Err }
