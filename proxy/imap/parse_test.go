package imap

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"mailgate/proxy"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		in   string
		want *command
	}{
		{`a1 LOGIN ann good`, &command{"a1", "LOGIN", []arg{{argAtom, "ann"}, {argAtom, "good"}}}},
		{`a1 login "ann" "we\\ird\"pw"`, &command{"a1", "login", []arg{{argString, "ann"}, {argString, `we\ird"pw`}}}},
		{"a1 LOGIN {3}\r\nann {4+}\r\ngood", &command{"a1", "LOGIN", []arg{{argString, "ann"}, {argString, "good"}}}},
		{"a1 LOGIN {0}\r\n \"\"", &command{"a1", "LOGIN", []arg{{argString, ""}, {argString, ""}}}},
		{`x ID ("name" "Mail" "version" NIL)`, &command{"x", "ID", []arg{{argOpen, ""}, {argString, "name"},
			{argString, "Mail"}, {argString, "version"}, {argAtom, "NIL"}, {argClose, ""}}}},
		{`a AUTHENTICATE PLAIN AGFubgBnb29k`, &command{"a", "AUTHENTICATE", []arg{{argAtom, "PLAIN"}, {argAtom, "AGFubgBnb29k"}}}},
		{`a NOOP  `, &command{"a", "NOOP", nil}},
		{`a LOGIN ünïcode@example.com pw`, &command{"a", "LOGIN", []arg{{argAtom, "ünïcode@example.com"}, {argAtom, "pw"}}}},
	}
	for _, tt := range tests {
		got, err := parseCommand([]byte(tt.in))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseCommand(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseCommandErrors(t *testing.T) {
	for _, in := range []string{
		``, `a1`, `* LOGIN`, `+ x`, `a%b NOOP`, `a1 LOGIN "open`, `a1 LOGIN "bad\escape"`,
		"a1 LOGIN {5}\r\nab", "a1 LOGIN {x}", `a1 LOGIN "a` + "\x00" + `"`, "a1 LOGIN \\", `(a NOOP`,
	} {
		if _, err := parseCommand([]byte(in)); !errors.Is(err, errSyntax) {
			t.Errorf("parseCommand(%q) err = %v, want errSyntax", in, err)
		}
	}
}

func TestReadCommand(t *testing.T) {
	var conts int
	in := "a LOGIN {3}\r\nann {4+}\r\ngood\r\nb NOOP\n"
	r := &cmdReader{br: bufio.NewReader(strings.NewReader(in)), maxLine: 100, maxLiteral: 10,
		cont: func([]byte) error { conts++; return nil }}
	b, err := r.readCommand()
	if err != nil || string(b) != "a LOGIN {3}\r\nann {4+}\r\ngood" || conts != 1 {
		t.Fatalf("readCommand = %q, %v, %d continuations", b, err, conts)
	}
	if b, err = r.readCommand(); err != nil || string(b) != "b NOOP" {
		t.Fatalf("second readCommand = %q, %v (bare LF)", b, err)
	}
}

func TestReadCommandLimits(t *testing.T) {
	tests := []struct {
		in      string
		nonSync bool
		lineErr bool
	}{
		{"a LOGIN {11}\r\n", false, false},
		{"a LOGIN {11+}\r\n", true, false},
		{"a LOGIN " + strings.Repeat("x", 200) + "\r\n", false, true},
	}
	for _, tt := range tests {
		r := &cmdReader{br: bufio.NewReader(strings.NewReader(tt.in)), maxLine: 100, maxLiteral: 10,
			cont: func([]byte) error { t.Errorf("%q: continuation sent for a refused literal", tt.in); return nil }}
		_, err := r.readCommand()
		var le *literalError
		switch {
		case tt.lineErr && !errors.Is(err, proxy.ErrLineTooLong):
			t.Errorf("%q: err = %v, want proxy.ErrLineTooLong", tt.in, err)
		case !tt.lineErr && (!errors.As(err, &le) || le.nonSync != tt.nonSync):
			t.Errorf("%q: err = %v, want literalError nonSync=%v", tt.in, err, tt.nonSync)
		}
	}
}

// encode writes cmd back in wire form, as readCommand would store it:
// strings that cannot be quoted become literals.
func (c *command) encode() []byte {
	var b bytes.Buffer
	b.WriteString(c.tag + " " + c.name)
	prev := argOpen
	for i, a := range c.args {
		if i == 0 || (a.kind != argClose && prev != argOpen) {
			b.WriteByte(' ')
		}
		switch a.kind {
		case argAtom:
			b.WriteString(a.val)
		case argOpen:
			b.WriteByte('(')
		case argClose:
			b.WriteByte(')')
		case argString:
			if strings.ContainsAny(a.val, "\r\n\x00") {
				b.WriteString("{" + strconv.Itoa(len(a.val)) + "}\r\n" + a.val)
			} else {
				b.WriteString(`"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a.val) + `"`)
			}
		}
		prev = a.kind
	}
	return b.Bytes()
}

// FuzzParse checks that parseCommand never panics and that whatever it
// accepts encodes back to a command that parses the same (round trip).
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`a1 LOGIN ann good`, `a1 LOGIN "ann" "we\\ird\"pw"`, "a1 LOGIN {3}\r\nann {4+}\r\ngood",
		`x ID ("name" "Mail" "version" NIL)`, `a AUTHENTICATE PLAIN AGFubgBnb29k`, `a AUTHENTICATE PLAIN =`,
		`* garbage`, "a1 LOGIN {0}\r\n {1}\r\n\x00", `a ((("x")))`, "a LOGIN {99999999999999999999}\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		parseTag(in)
		cmd, err := parseCommand(in)
		if err != nil {
			return
		}
		out := cmd.encode()
		again, err := parseCommand(out)
		if err != nil || !reflect.DeepEqual(cmd, again) {
			t.Fatalf("round trip %q -> %q -> %+v, %v; want %+v", in, out, again, err, cmd)
		}
	})
}

// FuzzReadCommand feeds arbitrary bytes to the reader: it must never panic
// nor return more than its limits allow.
func FuzzReadCommand(f *testing.F) {
	f.Add([]byte("a LOGIN {3}\r\nann {4+}\r\ngood\r\n"))
	f.Add([]byte("a LOGIN {300}\r\n"))
	f.Add([]byte("\n\n{1}\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &cmdReader{br: bufio.NewReaderSize(bytes.NewReader(in), 16), maxLine: 64, maxLiteral: 32,
			cont: func([]byte) error { return nil }}
		for range 100 {
			b, err := r.readCommand()
			if len(b) > 2*(64+32)+64+2 {
				t.Fatalf("readCommand returned %d bytes, over the limits", len(b))
			}
			if err != nil {
				return
			}
		}
	})
}
