package imap

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"

	"mailgate/proxy"
)

// Errors of the pre-auth reader and parser. Clients get fixed BAD texts.
var (
	errSyntax = errors.New("syntax error")
)

// literalError is a literal larger than the limit. A synchronising one is
// refused before the client sends it (RFC 3501 section 7.5: no "+", so the
// client must not send the data); a non-synchronising one ({n+}, RFC 7888)
// is already on its way, so the connection has to close.
type literalError struct {
	size    int64
	nonSync bool
}

func (e *literalError) Error() string {
	return "literal of " + strconv.FormatInt(e.size, 10) + " bytes too large"
}

// argKind tells the kinds of tokens a pre-auth command can carry.
type argKind uint8

const (
	argAtom   argKind = iota // atom, including NIL
	argString                // quoted string or literal, already decoded
	argOpen                  // "("
	argClose                 // ")"
)

type arg struct {
	kind argKind
	val  string
}

// command is a parsed client command: tag, name (as sent) and arguments.
type command struct {
	tag, name string
	args      []arg
}

// cmdReader reads one command with its literals from a client.
type cmdReader struct {
	br         *bufio.Reader
	maxLine    int
	maxLiteral int
	// cont sends the "+" continuation for a synchronising literal; sofar
	// is the command up to that literal. An error refuses the literal.
	cont func(sofar []byte) error
}

// readCommand returns the command's bytes in wire form: the lines without
// their final CRLF, each literal as "{n}" CRLF data. On error it returns what
// it read so far, so that the caller can answer with the right tag.
func (r *cmdReader) readCommand() ([]byte, error) {
	var buf []byte
	for {
		line, err := proxy.ReadLine(r.br, r.maxLine)
		buf = append(buf, line...)
		if err != nil {
			return buf, err
		}
		n, nonSync, ok := literalSuffix(line)
		if !ok {
			return buf, nil
		}
		if n > int64(r.maxLiteral) {
			return buf, &literalError{size: n, nonSync: nonSync}
		}
		if len(buf)+int(n) > 2*(r.maxLine+r.maxLiteral) {
			return buf, proxy.ErrLineTooLong // many literals in one command
		}
		if !nonSync {
			if err := r.cont(buf); err != nil {
				return buf, err
			}
		}
		buf = append(buf, '\r', '\n')
		start := len(buf)
		buf = append(buf, make([]byte, n)...)
		if _, err := io.ReadFull(r.br, buf[start:]); err != nil {
			return buf[:start], err
		}
	}
}

// literalSuffix reports whether line ends with "{n}" or "{n+}".
func literalSuffix(line []byte) (n int64, nonSync, ok bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false, false
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false, false
	}
	digits := line[open+1 : len(line)-1]
	if d, cut := bytes.CutSuffix(digits, []byte{'+'}); cut {
		digits, nonSync = d, true
	}
	if len(digits) == 0 || !allDigits(digits) {
		return 0, false, false
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil {
		n = 1<<63 - 1 // beyond any limit
	}
	return n, nonSync, true
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseCommand parses what readCommand returned. It accepts more than RFC 3501's
// grammar where that costs nothing (several spaces, atoms with 8-bit characters)
// because clients quote badly (docs/clients.md, "Clients quote passwords
// badly").
func parseCommand(b []byte) (*command, error) {
	p := &parser{b: b}
	tag := p.atom()
	if tag == "" || bytes.ContainsAny([]byte(tag), "+*%") || !p.space() {
		return nil, errSyntax
	}
	cmd := &command{tag: tag, name: p.atom()}
	if cmd.name == "" {
		return cmd, errSyntax
	}
	for {
		p.space()
		if p.pos == len(b) {
			return cmd, nil
		}
		a, err := p.arg()
		if err != nil {
			return cmd, err
		}
		cmd.args = append(cmd.args, a)
	}
}

// parseTag returns the tag of a command that could not be read whole, or "*".
func parseTag(b []byte) string {
	p := &parser{b: b}
	if tag := p.atom(); tag != "" && !bytes.ContainsAny([]byte(tag), "+*%") {
		return tag
	}
	return "*"
}

type parser struct {
	b   []byte
	pos int
}

// space skips spaces and reports whether there were any.
func (p *parser) space() bool {
	start := p.pos
	for p.pos < len(p.b) && p.b[p.pos] == ' ' {
		p.pos++
	}
	return p.pos > start
}

func (p *parser) arg() (arg, error) {
	switch p.b[p.pos] {
	case '(':
		p.pos++
		return arg{kind: argOpen}, nil
	case ')':
		p.pos++
		return arg{kind: argClose}, nil
	case '"':
		s, err := p.quoted()
		return arg{kind: argString, val: s}, err
	case '{':
		s, err := p.literal()
		return arg{kind: argString, val: s}, err
	}
	if a := p.atom(); a != "" {
		return arg{kind: argAtom, val: a}, nil
	}
	return arg{}, errSyntax
}

// isAtomChar is RFC 3501's ATOM-CHAR, relaxed: 8-bit bytes, "*", "%", "]"
// and "{" (inside an atom) are allowed; what would end a token is not.
func isAtomChar(c byte) bool {
	return c > ' ' && c != 0x7f && c != '(' && c != ')' && c != '"' && c != '\\'
}

func (p *parser) atom() string {
	start := p.pos
	for p.pos < len(p.b) && isAtomChar(p.b[p.pos]) && !(p.pos == start && p.b[p.pos] == '{') {
		p.pos++
	}
	return string(p.b[start:p.pos])
}

// quoted parses a quoted string: only \\ and \" are escapes (RFC 3501
// section 4.3), and CR or LF cannot appear.
func (p *parser) quoted() (string, error) {
	var out []byte
	for p.pos++; p.pos < len(p.b); p.pos++ {
		switch c := p.b[p.pos]; c {
		case '"':
			p.pos++
			return string(out), nil
		case '\\':
			p.pos++
			if p.pos == len(p.b) || (p.b[p.pos] != '\\' && p.b[p.pos] != '"') {
				return "", errSyntax
			}
			out = append(out, p.b[p.pos])
		case '\r', '\n', 0:
			return "", errSyntax
		default:
			out = append(out, c)
		}
	}
	return "", errSyntax
}

// literal parses "{n}" or "{n+}", CRLF and n bytes, as readCommand stored it.
func (p *parser) literal() (string, error) {
	end := bytes.Index(p.b[p.pos:], []byte("}\r\n"))
	if end < 0 {
		return "", errSyntax
	}
	n, _, ok := literalSuffix(p.b[p.pos : p.pos+end+1])
	start := p.pos + end + 3
	if !ok || n > int64(len(p.b)-start) || bytes.IndexByte(p.b[p.pos+1:p.pos+end], '{') >= 0 {
		return "", errSyntax
	}
	p.pos = start + int(n)
	return string(p.b[start:p.pos]), nil
}
