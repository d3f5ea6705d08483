package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// rawConfig is the file as written, before defaults. It reuses the exported
// types where a zero value and a missing key mean the same thing.
type rawConfig struct {
	Hostname string      `yaml:"hostname"`
	Store    Store       `yaml:"store"`
	Admin    Admin       `yaml:"admin"`
	TLS      TLS         `yaml:"tls"`
	IMAP     Proto       `yaml:"imap"`
	SMTP     SMTP        `yaml:"smtp"`
	POP3     Proto       `yaml:"pop3"` // d.present("pop3") tells a missing section from an empty one
	OAuth    OAuth       `yaml:"oauth"`
	Accounts rawAccounts `yaml:"accounts"`
	Log      Log         `yaml:"log"`
	Limits   rawLimits   `yaml:"limits"`
	Web      Web         `yaml:"web"`
	Alerts   Alerts      `yaml:"alerts"`
	Metrics  rawMetrics  `yaml:"metrics"`
	// ProxyProtocol is the top-level proxy_protocol section.
	ProxyProtocol rawProxyProtocol `yaml:"proxy_protocol"`
	// ShutdownGrace is nil when left out, so that an explicit 0 can mean
	// "close sessions at once".
	ShutdownGrace *time.Duration `yaml:"shutdown_grace"`
}

type rawAccounts struct {
	Domains      []string `yaml:"domains"`
	MaxPasswords *int     `yaml:"max_passwords"` // nil: default; an explicit 0 is an error
}

// doc remembers where each key of the file is, so that errors found after
// decoding still name their line.
type doc struct {
	file  string
	lines map[string]int // key path -> line of the key (or of the list item)
}

// decode reads exactly one YAML document into a rawConfig, refusing unknown
// keys. The document is read into a yaml.Node, whose lines place every
// error; check refuses what yaml's KnownFields would (Node.Decode has no
// such option), then the node is decoded.
func decode(name string, data []byte) (*doc, *rawConfig, error) {
	d := &doc{file: name, lines: map[string]int{}}
	top, err := d.document(data)
	if err != nil {
		return nil, nil, err
	}
	d.walk(top, "")
	if err := d.check(top, reflect.TypeFor[rawConfig]()); err != nil {
		return nil, nil, err
	}
	var raw rawConfig
	if err := top.Decode(&raw); err != nil {
		return nil, nil, d.yamlError(err)
	}
	return d, &raw, nil
}

// yamlError wraps an error that only yaml's text describes (a syntax error,
// a recursive alias), unchanged: that text carries its own line.
func (d *doc) yamlError(err error) error {
	return &Error{File: d.file, Err: err}
}

// syntaxError wraps an error of yaml's parser. yaml names no line for
// bytes that are not UTF-8 (a Latin-1 "é" from an old editor), so such a
// file is refused at the line of the first one instead. A file with a
// UTF-16 byte order mark is left to yaml, which reads UTF-16.
func (d *doc) syntaxError(data []byte, err error) error {
	if bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) {
		return d.yamlError(err)
	}
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 {
			line := 1 + bytes.Count(data[:i], []byte("\n"))
			return &Error{File: d.file, Line: line, Err: fmt.Errorf("not UTF-8 (byte %#x); save the file as UTF-8", data[i])}
		}
		i += size
	}
	return d.yamlError(err)
}

// document returns the top-level mapping of the only document in data.
func (d *doc) document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root, next yaml.Node
	if err := dec.Decode(&root); errors.Is(err, io.EOF) {
		return nil, &Error{File: d.file, Err: ErrEmpty}
	} else if err != nil {
		return nil, d.syntaxError(data, err)
	}
	if err := dec.Decode(&next); err == nil {
		return nil, &Error{File: d.file, Line: next.Line, Err: ErrMultipleDocuments}
	} else if !errors.Is(err, io.EOF) {
		return nil, d.syntaxError(data, err)
	}
	if len(root.Content) == 0 {
		return nil, &Error{File: d.file, Err: ErrEmpty}
	}
	top := root.Content[0]
	if top.Kind == yaml.ScalarNode && top.ShortTag() == "!!null" {
		return nil, &Error{File: d.file, Err: ErrEmpty} // "---" or "~" alone
	}
	if top.Kind != yaml.MappingNode {
		return nil, &Error{File: d.file, Line: top.Line, Err: errors.New("want a mapping of keys at the top level")}
	}
	return top, nil
}

// walk records the line of every key and list item under n. Aliases are
// not followed: their targets are recorded where they are defined, and
// following them could loop.
func (d *doc) walk(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinKey(path, k.Value)
			d.record(p, k.Line)
			d.walk(v, p)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			d.record(p, v.Line)
			d.walk(v, p)
		}
	}
}

func (d *doc) record(path string, line int) {
	if _, dup := d.lines[path]; !dup {
		d.lines[path] = line
	}
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// parentKey strips the last element: "a.b[1]" -> "a.b" -> "a" -> "".
func parentKey(key string) string {
	if strings.HasSuffix(key, "]") {
		return key[:strings.LastIndexByte(key, '[')]
	}
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[:i]
	}
	return ""
}

// present reports whether the file has key, even with an empty value.
func (d *doc) present(key string) bool {
	_, ok := d.lines[key]
	return ok
}

// line returns the line of key, or of its nearest ancestor present in the
// file when key was left out (a missing required key points at its section).
func (d *doc) line(key string) int {
	for k := key; k != ""; k = parentKey(k) {
		if l, ok := d.lines[k]; ok {
			return l
		}
	}
	return 0
}

// errorf returns an *Error for key, placed at key's line.
func (d *doc) errorf(key, format string, args ...any) error {
	return &Error{File: d.file, Line: d.line(key), Key: key, Err: fmt.Errorf(format, args...)}
}

// wrap returns an *Error for key with err as its problem.
func (d *doc) wrap(key string, err error) error {
	return &Error{File: d.file, Line: d.line(key), Key: key, Err: err}
}
