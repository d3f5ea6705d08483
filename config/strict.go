package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// checker walks a node tree beside the Go type it decodes into.
type checker struct {
	d    *doc
	errs []error
	// seen holds the aliased nodes already checked for a type: an anchor
	// used many times is checked once, so aliases cannot blow the walk up.
	seen map[aliasUse]bool
}

type aliasUse struct {
	n *yaml.Node
	t reflect.Type
}

// check returns what a KnownFields decode of top into t would refuse:
// unknown keys, keys written twice and values of the wrong kind, each as an
// *Error with the line and key path of its node (yaml v3 describes these
// only as text, such as "line 3: field tsl not found in type
// config.Listener"). It follows yaml's rules: a key is a field's yaml tag
// name, or its lower-cased name; ",inline" structs lend their keys; "-"
// fields are never read; and whether a value fits a field is decided by
// yaml itself, decoding that one node. Several problems are joined.
func (d *doc) check(top *yaml.Node, t reflect.Type) error {
	c := &checker{d: d, seen: map[aliasUse]bool{}}
	c.node(top, t, "")
	if len(c.errs) == 1 {
		return c.errs[0]
	}
	return errors.Join(c.errs...)
}

func (c *checker) fail(line int, key, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.d.file, Line: line, Key: key, Err: fmt.Errorf(format, args...)})
}

// node checks n, the value at key, against t.
func (c *checker) node(n *yaml.Node, t reflect.Type, key string) {
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || c.seen[aliasUse{n.Alias, t}] {
			return
		}
		c.seen[aliasUse{n.Alias, t}] = true
		n = n.Alias
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		c.mapping(n, t, key)
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			c.node(item, t.Elem(), key+"["+strconv.Itoa(i)+"]")
		}
	default:
		if n.Decode(reflect.New(t).Interface()) != nil {
			c.fail(n.Line, key, "want %s, got %s", typeWords(t), tagWords(n.ShortTag()))
		} else if cutsFraction(n, t) {
			c.fail(n.Line, key, "want a whole number, got %s", n.Value)
		}
	}
}

// cutsFraction reports whether yaml, decoding n into an integer field of
// type t, dropped a fraction (2.9 becomes 2). A whole float such as 2.5e7
// is taken as it is.
func cutsFraction(n *yaml.Node, t reflect.Type) bool {
	var f float64
	return t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64 && n.ShortTag() == "!!float" &&
		n.Decode(&f) == nil && f != math.Trunc(f)
}

// mapping checks the keys of n against the fields of struct type t.
func (c *checker) mapping(n *yaml.Node, t reflect.Type, key string) {
	if c.duplicate(n) {
		return
	}
	fields := yamlFields(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			c.merge(v, t, key)
			continue
		}
		ft, ok := fields[k.Value]
		switch {
		case k.Kind != yaml.ScalarNode:
			c.fail(k.Line, key, "want a key name, got %s", tagWords(k.ShortTag()))
		case !ok:
			c.fail(k.Line, joinKey(key, k.Value), "unknown key")
		default:
			c.node(v, ft, joinKey(key, k.Value))
		}
	}
}

// duplicate reports a key written twice in one mapping, as yaml does
// (same kind and value), in one pass: comparing every pair of keys took
// minutes on a file of a few megabytes.
func (c *checker) duplicate(n *yaml.Node) bool {
	type keyID struct {
		kind  yaml.Kind
		value string
	}
	first := map[keyID]*yaml.Node{}
	found := false
	for i := 0; i < len(n.Content); i += 2 {
		k := n.Content[i]
		id := keyID{k.Kind, k.Value}
		if f, dup := first[id]; dup {
			c.fail(k.Line, "", "mapping key %q already defined at line %d", k.Value, f.Line)
			found = true
			continue
		}
		first[id] = k
	}
	return found
}

// merge checks the mappings a "<<" key merges into the one at key (YAML
// merge key type). Values that are no mapping are left to yaml, which
// refuses them. An alias goes to node as it is, so that its mapping is
// checked once however often it is merged: merges that repeat an alias,
// nested, would otherwise be walked exponentially often.
func (c *checker) merge(v *yaml.Node, t reflect.Type, key string) {
	items := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		items = v.Content
	}
	for _, m := range items {
		target := m
		if m.Kind == yaml.AliasNode && m.Alias != nil {
			target = m.Alias
		}
		if target.Kind == yaml.MappingNode {
			c.node(m, t, key)
		}
	}
}

// yamlFields maps the keys of struct type t to their field types, by the
// rules of yaml's decoder.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case !f.IsExported() || name == "-":
		case strings.Contains(opts, "inline"):
			for k, ft := range yamlFields(f.Type) {
				fields[k] = ft
			}
		case name == "":
			fields[strings.ToLower(f.Name)] = f.Type
		default:
			fields[name] = f.Type
		}
	}
	return fields
}

var durationType = reflect.TypeFor[time.Duration]()

// typeWords names what a field of type t takes.
func typeWords(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "text"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	case reflect.Struct:
		return "a mapping of keys"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if t == durationType {
			return "a duration such as 30s"
		}
		return "a whole number"
	}
	return t.String()
}

// tagWords names what the file holds, by the node's resolved tag.
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
