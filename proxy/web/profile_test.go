package web

import (
	"encoding/xml"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailgate/proxy/admin"
)

// parsePlist decodes an XML property list into maps, slices, strings,
// ints and bools, refusing anything else: the check that the profile is
// a property list a device can read.
func parsePlist(data []byte) (any, error) {
	d := xml.NewDecoder(strings.NewReader(string(data)))
	d.Strict = true
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "plist" {
				return nil, errors.New("root is not plist")
			}
			v, err := plistValue(d)
			if err != nil {
				return nil, err
			}
			return v, nil
		}
	}
}

// plistValue reads the next value element.
func plistValue(d *xml.Decoder) (any, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return plistElement(d, t)
		case xml.EndElement:
			return nil, io.EOF // end of the enclosing array or dict
		}
	}
}

func plistElement(d *xml.Decoder, se xml.StartElement) (any, error) {
	switch se.Name.Local {
	case "dict":
		m := map[string]any{}
		for {
			k, err := plistValue(d)
			if err == io.EOF {
				return m, nil
			} else if err != nil {
				return nil, err
			}
			key, ok := k.(plistKey)
			if !ok {
				return nil, errors.New("dict entry without a key")
			}
			v, err := plistValue(d)
			if err != nil {
				return nil, errors.New("key without a value")
			}
			m[string(key)] = v
		}
	case "array":
		var a []any
		for {
			v, err := plistValue(d)
			if err == io.EOF {
				return a, nil
			} else if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
	case "true", "false":
		d.Skip()
		return se.Name.Local == "true", nil
	}
	var text string
	if err := d.DecodeElement(&text, &se); err != nil {
		return nil, err
	}
	switch se.Name.Local {
	case "key":
		return plistKey(text), nil
	case "string":
		return text, nil
	case "integer":
		return strconv.Atoi(text)
	}
	return nil, errors.New("unknown element " + se.Name.Local)
}

type plistKey string

var profileLinkRE = regexp.MustCompile(`<a class="button" href="(/profile/[A-Za-z0-9_-]+)">Download for Apple Mail / iPhone</a>`)

func TestProfile(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.signIn(e.user("ann@example.com"))
	res := b.create(`Phone & "iPad" <1>`)
	secret := secretOf(t, res)
	m := profileLinkRE.FindStringSubmatch(res.body)
	if m == nil {
		t.Fatalf("no Apple profile link:\n%s", res.body)
	}

	// Someone else, signed in or not, cannot take it (nor use it up).
	other := e.browser()
	if p := other.get(m[1]); p.code == 200 {
		t.Fatal("signed-out browser got the profile")
	}
	other.signIn(e.user("bob@example.com"))
	if p := other.get(m[1]); p.code != 404 {
		t.Fatalf("another mailbox got the profile: %d", p.code)
	}

	p := b.get(m[1])
	if p.code != 200 || p.header.Get("Content-Type") != "application/x-apple-aspen-config" ||
		p.header.Get("Cache-Control") != "no-store" || !strings.Contains(p.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("profile: %d %v", p.code, p.header)
	}
	v, err := parsePlist([]byte(p.body))
	if err != nil {
		t.Fatalf("not a property list: %v\n%s", err, p.body)
	}
	top := v.(map[string]any)
	if top["PayloadType"] != "Configuration" || top["PayloadVersion"] != 1 {
		t.Fatalf("top: %v", top)
	}
	content := top["PayloadContent"].([]any)
	if len(content) != 1 {
		t.Fatalf("%d payloads", len(content))
	}
	want := map[string]any{
		"PayloadType": "com.apple.mail.managed", "EmailAccountType": "EmailTypeIMAP", "EmailAddress": "ann@example.com",
		"IncomingMailServerHostName": "mail.example.com", "IncomingMailServerPortNumber": 993, "IncomingMailServerUseSSL": true,
		"IncomingMailServerUsername": "ann@example.com", "IncomingPassword": secret,
		"OutgoingMailServerHostName": "mail.example.com", "OutgoingMailServerPortNumber": 587, "OutgoingMailServerUseSSL": false,
		"OutgoingMailServerUsername": "ann@example.com", "OutgoingPasswordSameAsIncomingPassword": true,
	}
	mail := content[0].(map[string]any)
	for k, w := range want {
		if mail[k] != w {
			t.Errorf("%s = %v, want %v", k, mail[k], w)
		}
	}
	uuids := regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`)
	if !uuids.MatchString(top["PayloadUUID"].(string)) || !uuids.MatchString(mail["PayloadUUID"].(string)) ||
		top["PayloadUUID"] == mail["PayloadUUID"] {
		t.Errorf("payload UUIDs %v %v", top["PayloadUUID"], mail["PayloadUUID"])
	}

	if p := b.get(m[1]); p.code != 404 {
		t.Fatalf("second download: %d", p.code)
	}
}

func TestProfileExpires(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.signIn(e.user("ann@example.com"))
	m := profileLinkRE.FindStringSubmatch(b.create("Phone").body)
	e.clock.Add(profileTTL + time.Second)
	if p := b.get(m[1]); p.code != 404 {
		t.Fatalf("expired link: %d", p.code)
	}
}

func TestProfilePorts(t *testing.T) {
	implicit := admin.Settings{Hostname: "h", IMAP: []admin.Endpoint{{Port: 143, Security: "STARTTLS"}, {Port: 993, Security: "SSL/TLS"}},
		SMTP: []admin.Endpoint{{Port: 25, Security: "none"}, {Port: 587, Security: "STARTTLS"}, {Port: 465, Security: "SSL/TLS"}}}
	data, ok := buildProfile(implicit, "a@example.com", "s", "n")
	if !ok || !strings.Contains(string(data), "<key>OutgoingMailServerPortNumber</key>\n<integer>465</integer>") {
		t.Fatalf("implicit SMTP port not chosen:\n%s", data)
	}
	if _, ok := buildProfile(admin.Settings{Hostname: "h", IMAP: implicit.IMAP, SMTP: []admin.Endpoint{{Port: 25, Security: "none"}}}, "a", "s", "n"); ok {
		t.Fatal("a profile without TLS for SMTP")
	}
	e := newEnv(t, func(o *Options) { o.Settings = admin.Settings{Hostname: "h", IMAP: implicit.IMAP} })
	b := e.browser()
	b.signIn(e.user("ann@example.com"))
	if res := b.create("Phone"); strings.Contains(res.body, "Download for Apple") {
		t.Fatal("a profile link without SMTP settings")
	}
}
