package config

import (
	"errors"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// yaml v3 reports problems only as text ("line 3: field tsl not found in
// type config.Listener"). The patterns below turn that text into an *Error
// with the file, line and key path, and replace Go type names with words an
// operator knows. Text that matches no pattern is kept as yaml wrote it.
var (
	reLine     = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	reNotFound = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
	reType     = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (\\S+)$")
)

// yamlError converts an error from the yaml decoder.
func (d *doc) yamlError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return d.yamlMessage(err.Error())
	}
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		errs = append(errs, d.yamlMessage(msg))
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// yamlMessage converts one message of the yaml decoder.
func (d *doc) yamlMessage(msg string) *Error {
	m := reLine.FindStringSubmatch(msg)
	if m == nil {
		return &Error{File: d.file, Err: errors.New(strings.TrimPrefix(msg, "yaml: "))}
	}
	line, _ := strconv.Atoi(m[1])
	e := &Error{File: d.file, Line: line, Err: errors.New(m[2])}
	if f := reNotFound.FindStringSubmatch(m[2]); f != nil {
		e.Key = d.keyWhere(func(en entry) bool { return en.name == f[1] && d.lines[en.path] == line })
		e.Err = errors.New("unknown key")
		if e.Key == "" {
			e.Err = errors.New("unknown key " + strconv.Quote(f[1]))
		}
	} else if t := reType.FindStringSubmatch(m[2]); t != nil {
		e.Key = d.keyWhere(func(en entry) bool {
			return en.val.Line == line && en.val.ShortTag() == t[1] && snippetOf(en.val.Value, t[2])
		})
		e.Err = errors.New("want " + goTypeWords(t[3]) + ", got " + tagWords(t[1]))
	}
	return e
}

// keyWhere returns the path of the first entry that matches, or "".
func (d *doc) keyWhere(match func(entry) bool) string {
	for _, en := range d.entries {
		if match(en) {
			return en.path
		}
	}
	return ""
}

// snippetOf reports whether yaml's quoted snippet (cut to 7 bytes and "..."
// for values longer than 10) came from value.
func snippetOf(value, snippet string) bool {
	if cut, ok := strings.CutSuffix(snippet, "..."); ok && len(value) > 10 {
		return strings.HasPrefix(value, cut)
	}
	return value == snippet
}

func goTypeWords(t string) string {
	switch {
	case t == "string":
		return "text"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "*int"):
		return "a whole number"
	case strings.HasPrefix(t, "config."):
		return "a mapping of keys"
	}
	return t
}

func tagWords(tag string) string {
	switch tag {
	case "!!str":
		return "text"
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "true or false"
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!null":
		return "nothing"
	}
	return tag
}
