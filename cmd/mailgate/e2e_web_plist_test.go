package main

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
)

// parsePlist decodes an XML property list (Apple's plist DTD 1.0, the
// format of a .mobileconfig) into Go values: dict as map[string]any, array
// as []any, string, integer as int64, real as float64, true/false as bool,
// date and data as their text. It is strict: anything else is an error, so
// a profile Apple's parser would refuse fails here too.
func parsePlist(r io.Reader) (any, error) {
	d := xml.NewDecoder(r)
	d.Strict = true
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("plist: no <plist> element: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "plist" {
				return nil, fmt.Errorf("plist: root element <%s>, want <plist>", se.Name.Local)
			}
			v, err := plistValue(d, nil)
			if err != nil {
				return nil, err
			}
			if err := plistEnd(d, "plist"); err != nil {
				return nil, err
			}
			return v, nil
		}
	}
}

var errPlistEnd = errors.New("end of container")

// plistValue reads the next value element; start is its start tag if
// already read.
func plistValue(d *xml.Decoder, start *xml.StartElement) (any, error) {
	if start == nil {
		se, err := plistNextStart(d)
		if err != nil {
			return nil, err
		}
		start = se
	}
	switch start.Name.Local {
	case "dict":
		return plistDict(d)
	case "array":
		return plistArray(d)
	case "true", "false":
		return start.Name.Local == "true", plistEnd(d, start.Name.Local)
	}
	var text string
	if err := d.DecodeElement(&text, start); err != nil {
		return nil, fmt.Errorf("plist: <%s>: %w", start.Name.Local, err)
	}
	switch start.Name.Local {
	case "string", "date", "data":
		return text, nil
	case "integer":
		return strconv.ParseInt(strings.TrimSpace(text), 10, 64)
	case "real":
		return strconv.ParseFloat(strings.TrimSpace(text), 64)
	}
	return nil, fmt.Errorf("plist: unknown element <%s>", start.Name.Local)
}

func plistDict(d *xml.Decoder) (map[string]any, error) {
	m := map[string]any{}
	for {
		se, err := plistNextStart(d)
		if errors.Is(err, errPlistEnd) {
			return m, nil
		} else if err != nil {
			return nil, err
		}
		if se.Name.Local != "key" {
			return nil, fmt.Errorf("plist: <%s> in a dict where <key> belongs", se.Name.Local)
		}
		var key string
		if err := d.DecodeElement(&key, se); err != nil {
			return nil, err
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("plist: key %q twice in a dict", key)
		}
		v, err := plistValue(d, nil)
		if err != nil {
			return nil, fmt.Errorf("plist: key %q: %w", key, err)
		}
		m[key] = v
	}
}

func plistArray(d *xml.Decoder) ([]any, error) {
	a := []any{}
	for {
		se, err := plistNextStart(d)
		if errors.Is(err, errPlistEnd) {
			return a, nil
		} else if err != nil {
			return nil, err
		}
		v, err := plistValue(d, se)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
	}
}

// plistNextStart skips white space and comments to the next start tag;
// the end of the enclosing container is errPlistEnd.
func plistNextStart(d *xml.Decoder) (*xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("plist: %w", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			return &tok, nil
		case xml.EndElement:
			return nil, errPlistEnd
		case xml.CharData:
			if strings.TrimSpace(string(tok)) != "" {
				return nil, fmt.Errorf("plist: stray text %q", tok)
			}
		}
	}
}

// plistEnd reads the end tag of name.
func plistEnd(d *xml.Decoder, name string) error {
	for {
		tok, err := d.Token()
		if err != nil {
			return fmt.Errorf("plist: </%s>: %w", name, err)
		}
		switch tok := tok.(type) {
		case xml.EndElement:
			if tok.Name.Local != name {
				return fmt.Errorf("plist: </%s>, want </%s>", tok.Name.Local, name)
			}
			return nil
		case xml.StartElement:
			return fmt.Errorf("plist: <%s> inside <%s>", tok.Name.Local, name)
		case xml.CharData:
			if strings.TrimSpace(string(tok)) != "" {
				return fmt.Errorf("plist: stray text %q in <%s>", tok, name)
			}
		}
	}
}

// TestWebPlistParser: the parser the profile check relies on reads a
// profile-shaped plist and refuses a malformed one.
func TestWebPlistParser(t *testing.T) {
	t.Parallel()
	const doc = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
  <key>PayloadContent</key><array><dict>
    <key>IncomingMailServerPortNumber</key><integer>993</integer>
    <key>IncomingMailServerUseSSL</key><true/>
    <key>EmailAddress</key><string>a&amp;b@example.com</string>
  </dict></array>
  <key>PayloadVersion</key><integer>1</integer>
</dict></plist>`
	v, err := parsePlist(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	mail := v.(map[string]any)["PayloadContent"].([]any)[0].(map[string]any)
	if mail["IncomingMailServerPortNumber"] != int64(993) || mail["IncomingMailServerUseSSL"] != true ||
		mail["EmailAddress"] != "a&b@example.com" {
		t.Errorf("parsed %#v", mail)
	}
	for _, bad := range []string{
		`<plist><dict><string>no key</string></dict></plist>`,
		`<plist><dict><key>a</key><integer>x</integer></dict></plist>`,
		`<plist><dict><key>a</key><true/><key>a</key><false/></dict></plist>`,
		`<plist><dict><key>a</key><string>open</dict></plist>`,
		`<html></html>`,
	} {
		if _, err := parsePlist(strings.NewReader(bad)); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
}
