package store

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Scopes an app password can carry: the protocols it may log in to.
const (
	ScopeIMAP = "imap"
	ScopePOP3 = "pop3"
	ScopeSMTP = "smtp"
	// ScopeAll grants every protocol mailgate serves, including protocols
	// added after the password was created. A password created without
	// scopes carries it.
	ScopeAll = "all"
)

// protocols are the scopes that name one protocol: what Verify is asked
// for.
var protocols = []string{ScopeIMAP, ScopePOP3, ScopeSMTP}

// maxNameLen is the longest password name, in characters.
const maxNameLen = 64

// MaxMailboxLen is the longest mailbox address accepted, in bytes: RFC 5321
// section 4.5.3.1 allows 64 octets of local part, "@" and 255 of domain.
const MaxMailboxLen = 320

// CanonicalMailbox returns the one form a mailbox has everywhere in mailgate
// (store keys, throttle, session limits, logs): trimmed of white space and
// with ASCII letters lower-cased. Only ASCII is folded: Unicode case mapping
// would make distinct strings equal (U+212A KELVIN SIGN lower-cases to "k")
// and depends on tables that change between Go versions. It rejects
// (ErrInvalid) an empty address, one over MaxMailboxLen bytes, one without
// exactly one "@" or with an empty local part or domain, and one with inner
// white space, control characters, NUL or invalid UTF-8.
func CanonicalMailbox(mailbox string) (string, error) {
	m := asciiLower(strings.TrimSpace(mailbox))
	local, domain, ok := strings.Cut(m, "@")
	switch {
	case m == "":
		return "", fmt.Errorf("%w: empty mailbox", ErrInvalid)
	case len(m) > MaxMailboxLen:
		return "", fmt.Errorf("%w: mailbox longer than %d bytes", ErrInvalid, MaxMailboxLen)
	case !utf8.ValidString(m) || strings.IndexFunc(m, badMailboxRune) >= 0:
		return "", fmt.Errorf("%w: mailbox %q has spaces or control characters", ErrInvalid, m)
	case !ok || strings.Contains(domain, "@"):
		return "", fmt.Errorf("%w: mailbox %q needs exactly one @", ErrInvalid, m)
	case local == "" || domain == "":
		return "", fmt.Errorf("%w: mailbox %q needs a local part and a domain", ErrInvalid, m)
	}
	return m, nil
}

// asciiLower lower-cases A-Z and leaves every other byte alone.
func asciiLower(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return 'A' <= r && r <= 'Z' }) < 0 {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func badMailboxRune(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) || !unicode.IsPrint(r)
}

// checkName trims a password name and checks it is 1..64 printable
// characters.
func checkName(name string) (string, error) {
	n := strings.TrimSpace(name)
	switch {
	case n == "":
		return "", fmt.Errorf("%w: empty password name", ErrInvalid)
	case !utf8.ValidString(n):
		return "", fmt.Errorf("%w: password name is not UTF-8", ErrInvalid)
	case utf8.RuneCountInString(n) > maxNameLen:
		return "", fmt.Errorf("%w: password name longer than %d characters", ErrInvalid, maxNameLen)
	case strings.IndexFunc(n, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return "", fmt.Errorf("%w: password name has control characters", ErrInvalid)
	}
	return n, nil
}

// checkScopes lower-cases, de-duplicates and sorts scopes. Nil or empty
// scopes, or any list holding ScopeAll, mean ScopeAll. Naming every
// protocol is kept as named: only "all" follows protocols added later.
func checkScopes(scopes []string) ([]string, error) {
	if len(scopes) == 0 {
		return []string{ScopeAll}, nil
	}
	var out []string
	for _, sc := range scopes {
		sc = strings.ToLower(strings.TrimSpace(sc))
		if sc != ScopeAll && !slices.Contains(protocols, sc) {
			return nil, fmt.Errorf("%w: unknown scope %q (want %s or %s)",
				ErrInvalid, sc, strings.Join(protocols, ", "), ScopeAll)
		}
		out = append(out, sc)
	}
	if slices.Contains(out, ScopeAll) {
		return []string{ScopeAll}, nil
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// grants reports whether a password with scopes may log in to proto, one
// of protocols.
func grants(scopes []string, proto string) bool {
	return slices.Contains(protocols, proto) &&
		(slices.Contains(scopes, proto) || slices.Contains(scopes, ScopeAll))
}

// checkProvider accepts a short printable provider name without NUL (NUL
// separates the parts of a token key and of the sealing associated data).
func checkProvider(provider string) error {
	if provider == "" || len(provider) > maxNameLen ||
		strings.IndexFunc(provider, badMailboxRune) >= 0 {
		return fmt.Errorf("%w: provider name %q", ErrInvalid, provider)
	}
	return nil
}
