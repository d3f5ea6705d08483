package main

import (
	"net"
	"strconv"

	"mailgate/config"
	"mailgate/proxy/admin"
)

// clientSettings are what a mail user enters in the client, derived from
// the listeners so they stay true when the admin changes ports.
func clientSettings(cfg *config.Config) admin.Settings {
	return admin.Settings{Hostname: cfg.Hostname, IMAP: endpoints(cfg.IMAP.Listen), SMTP: endpoints(cfg.SMTP.Listen)}
}

func endpoints(ls []config.Listener) []admin.Endpoint {
	out := []admin.Endpoint{}
	for _, l := range ls {
		_, p, err := net.SplitHostPort(l.Address)
		port, _ := strconv.Atoi(p)
		if err != nil || port == 0 {
			continue
		}
		out = append(out, admin.Endpoint{Port: port, Security: securityLabel(l)})
	}
	return out
}

// securityLabel names a listener's TLS mode the way Outlook and Apple
// Mail do.
func securityLabel(l config.Listener) string {
	switch l.TLS {
	case config.TLSImplicit:
		return "SSL/TLS"
	case config.TLSStartTLS:
		return "STARTTLS"
	}
	return "none"
}
