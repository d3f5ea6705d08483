package web

import (
	"bytes"
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"strconv"

	"mailgate/proxy/admin"
)

// Security labels of admin.Endpoint, as clients label them.
const (
	implicitTLS = "SSL/TLS"
	startTLS    = "STARTTLS"
)

// pickEndpoint is the port a profile uses: the first implicit-TLS one,
// else the first STARTTLS one (issue 14); never a port without TLS.
func pickEndpoint(eps []admin.Endpoint) (admin.Endpoint, bool) {
	for _, sec := range []string{implicitTLS, startTLS} {
		for _, e := range eps {
			if e.Security == sec {
				return e, true
			}
		}
	}
	return admin.Endpoint{}, false
}

// buildProfile returns an Apple configuration profile (.mobileconfig, an
// unsigned XML property list) with one mail account: IMAP in, SMTP out,
// this address and password. ok is false when the settings lack an IMAP
// or SMTP port with TLS.
func buildProfile(st admin.Settings, mailbox, secret, name string) (data []byte, ok bool) {
	in, okIn := pickEndpoint(st.IMAP)
	out, okOut := pickEndpoint(st.SMTP)
	if !okIn || !okOut || st.Hostname == "" {
		return nil, false
	}
	var p plist
	p.start()
	p.open("dict")
	p.str("PayloadType", "Configuration")
	p.integer("PayloadVersion", 1)
	p.str("PayloadIdentifier", "mailgate."+st.Hostname+"."+mailbox)
	p.str("PayloadUUID", newUUID())
	p.str("PayloadDisplayName", "Mail: "+mailbox)
	p.str("PayloadDescription", "Mail account "+mailbox+" through "+st.Hostname+" (app password "+name+")")
	p.key("PayloadContent")
	p.open("array")
	p.open("dict")
	p.str("PayloadType", "com.apple.mail.managed")
	p.integer("PayloadVersion", 1)
	p.str("PayloadIdentifier", "mailgate."+st.Hostname+"."+mailbox+".mail")
	p.str("PayloadUUID", newUUID())
	p.str("PayloadDisplayName", mailbox)
	p.str("EmailAccountDescription", mailbox)
	p.str("EmailAccountType", "EmailTypeIMAP")
	p.str("EmailAddress", mailbox)
	p.str("IncomingMailServerAuthentication", "EmailAuthPassword")
	p.str("IncomingMailServerHostName", st.Hostname)
	p.integer("IncomingMailServerPortNumber", in.Port)
	p.boolean("IncomingMailServerUseSSL", in.Security == implicitTLS)
	p.str("IncomingMailServerUsername", mailbox)
	p.str("IncomingPassword", secret)
	p.str("OutgoingMailServerAuthentication", "EmailAuthPassword")
	p.str("OutgoingMailServerHostName", st.Hostname)
	p.integer("OutgoingMailServerPortNumber", out.Port)
	p.boolean("OutgoingMailServerUseSSL", out.Security == implicitTLS)
	p.str("OutgoingMailServerUsername", mailbox)
	p.boolean("OutgoingPasswordSameAsIncomingPassword", true)
	p.close("dict")
	p.close("array")
	p.close("dict")
	p.b.WriteString("</plist>\n")
	return p.b.Bytes(), true
}

// plist writes an XML property list, escaping every string.
type plist struct{ b bytes.Buffer }

func (p *plist) start() {
	p.b.WriteString(xml.Header)
	p.b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	p.b.WriteString(`<plist version="1.0">` + "\n")
}

func (p *plist) open(tag string)  { p.b.WriteString("<" + tag + ">\n") }
func (p *plist) close(tag string) { p.b.WriteString("</" + tag + ">\n") }

func (p *plist) key(k string) {
	p.b.WriteString("<key>")
	xml.EscapeText(&p.b, []byte(k))
	p.b.WriteString("</key>\n")
}

func (p *plist) str(k, v string) {
	p.key(k)
	p.b.WriteString("<string>")
	xml.EscapeText(&p.b, []byte(v))
	p.b.WriteString("</string>\n")
}

func (p *plist) integer(k string, v int) {
	p.key(k)
	p.b.WriteString("<integer>" + strconv.Itoa(v) + "</integer>\n")
}

func (p *plist) boolean(k string, v bool) {
	p.key(k)
	if v {
		p.b.WriteString("<true/>\n")
	} else {
		p.b.WriteString("<false/>\n")
	}
}

// newUUID returns a random (version 4) UUID, as profiles name payloads.
func newUUID() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
