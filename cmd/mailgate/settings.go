package main

import (
	"net"
	"strconv"

	"mailgate/config"
)

// settings are what a mail user enters in the client, derived from the
// listeners so they stay true when the admin changes ports.
type settings struct {
	Hostname string     `json:"hostname"`
	IMAP     []endpoint `json:"imap"`
	SMTP     []endpoint `json:"smtp"`
}

type endpoint struct {
	Port     int    `json:"port"`
	Security string `json:"security"` // as clients label it
}

func clientSettings(cfg *config.Config) settings {
	return settings{Hostname: cfg.Hostname, IMAP: endpoints(cfg.IMAP.Listen), SMTP: endpoints(cfg.SMTP.Listen)}
}

func endpoints(ls []config.Listener) []endpoint {
	out := []endpoint{}
	for _, l := range ls {
		_, p, err := net.SplitHostPort(l.Address)
		port, _ := strconv.Atoi(p)
		if err != nil || port == 0 {
			continue
		}
		out = append(out, endpoint{Port: port, Security: securityLabel(l.TLS)})
	}
	return out
}

// securityLabel names a TLS mode the way Outlook and Apple Mail do.
func securityLabel(mode config.TLSMode) string {
	switch mode {
	case config.TLSImplicit:
		return "SSL/TLS"
	case config.TLSStartTLS:
		return "STARTTLS"
	}
	return "none"
}
