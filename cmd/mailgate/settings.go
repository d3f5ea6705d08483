package main

import (
	"net"
	"strconv"

	"mailgate/config"
	"mailgate/proxy"
	"mailgate/proxy/admin"
)

// clientSettings are what a mail user enters in the client, derived from
// the listeners so they stay true when the admin changes ports.
func clientSettings(cfg *config.Config) admin.Settings {
	s := admin.Settings{Hostname: cfg.Hostname, IMAP: endpoints(cfg.IMAP.Listen), SMTP: endpoints(cfg.SMTP.Listen)}
	if len(cfg.POP3.Listen) > 0 {
		s.POP3 = endpoints(cfg.POP3.Listen)
	}
	return s
}

func endpoints(ls []config.Listener) []admin.Endpoint {
	out := []admin.Endpoint{}
	for _, l := range ls {
		_, p, err := net.SplitHostPort(l.Address)
		port, _ := strconv.Atoi(p)
		if err != nil || port == 0 {
			continue
		}
		out = append(out, admin.Endpoint{Port: port, Security: securityLabel(tlsMode(l.TLS))})
	}
	return out
}

// setSettings makes cfg's client settings the ones password create shows.
func (d *daemon) setSettings(cfg *config.Config) {
	s := clientSettings(cfg)
	d.settings.Store(&s)
}

// currentSettings returns the client settings of the running config.
func (d *daemon) currentSettings() admin.Settings { return *d.settings.Load() }

// boundSettings are clientSettings with the ports the IMAP, SMTP and POP3
// listeners really bound, in config order: the same unless a port is 0
// (tests, serve -dev -dev-ports 0,...).
func boundSettings(hostname string, bound []boundListener) admin.Settings {
	s := admin.Settings{Hostname: hostname, IMAP: []admin.Endpoint{}, SMTP: []admin.Endpoint{}}
	for _, b := range bound {
		tcp, ok := b.addr.(*net.TCPAddr)
		if !ok {
			continue
		}
		e := admin.Endpoint{Port: tcp.Port, Security: securityLabel(b.mode)}
		switch b.proto {
		case proxy.ProtoIMAP:
			s.IMAP = append(s.IMAP, e)
		case proxy.ProtoSMTP:
			s.SMTP = append(s.SMTP, e)
		case proxy.ProtoPOP3:
			s.POP3 = append(s.POP3, e)
		}
	}
	return s
}

// securityLabel names a listener's TLS mode the way Outlook and Apple
// Mail do.
func securityLabel(m proxy.TLSMode) string {
	switch m {
	case proxy.TLSImplicit:
		return "SSL/TLS"
	case proxy.TLSStartTLS:
		return "STARTTLS"
	}
	return "none"
}
