package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestPgError: what callers see of a database error decides between "try
// later" and a real failure, so each kind is sorted on purpose.
func TestPgError(t *testing.T) {
	for _, tc := range []struct {
		name        string
		err         error
		unavailable bool
		same        bool // returned as it is
	}{
		{"nil", nil, false, true},
		{"ours", fmt.Errorf("x: %w", ErrDuplicateName), false, true},
		{"not found", ErrNotFound, false, true},
		{"connection reset", io.ErrUnexpectedEOF, true, false},
		{"deadline", context.DeadlineExceeded, true, false},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true, false},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, true, false},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true, false},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true, false},
		{"read-only replica", &pgconn.PgError{Code: "25006"}, true, false},
		{"wrong password", &pgconn.PgError{Code: "28P01"}, false, false},
		{"syntax", &pgconn.PgError{Code: "42601"}, false, false},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false, false},
	} {
		got := pgError(tc.err)
		if errors.Is(got, ErrUnavailable) != tc.unavailable {
			t.Errorf("%s: %v, unavailable want %v", tc.name, got, tc.unavailable)
		}
		if tc.same && got != tc.err {
			t.Errorf("%s: %v, want it unchanged", tc.name, got)
		}
		if tc.err != nil && !errors.Is(got, tc.err) {
			t.Errorf("%s: %v does not wrap the cause", tc.name, got)
		}
	}
}

// TestParseChange: payloads round-trip through the notify format, and
// anything else is ignored.
func TestParseChange(t *testing.T) {
	for _, c := range []Change{
		{Kind: PasswordRevoked, Mailbox: "a@example.com", PasswordID: "0123456789abcdef"},
		{Kind: MailboxRevoked, Mailbox: "ü@example.com"},
	} {
		payload := changePayload(c)
		if got, ok := parseChange(payload); !ok || got != c {
			t.Errorf("parseChange(%q) = %+v %v, want %+v", payload, got, ok, c)
		}
	}
	for _, bad := range []string{"", "m", "p a@example.com", "x a@example.com", "m a b", "p a b c"} {
		if got, ok := parseChange(bad); ok {
			t.Errorf("parseChange(%q) = %+v, want ignored", bad, got)
		}
	}
}
