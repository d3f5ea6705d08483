package main

import (
	"crypto/tls"
	"slices"
)

// legacySuites are the TLS 1.0 cipher suites an unpatched Windows 7 Schannel
// (Outlook 2010) shares with us: ECDHE with AES-CBC-SHA, for an RSA or an ECDSA
// certificate (docs/clients.md, "Outlook on Windows 7 speaks only TLS 1.0").
// crypto/tls still serves them at TLS 1.0 when Config.MinVersion is set
// explicitly; the tls10server GODEBUG only changes the default when MinVersion
// is 0, so no //go:debug is needed.
var legacySuites = []uint16{
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
}

// modernSuites are the TLS 1.2 suites of Mozilla's "intermediate"
// configuration that Go implements: ECDHE with AES-GCM or ChaCha20-Poly1305,
// so forward secret and authenticated encryption only. Go's own default list
// also has the ECDHE AES-CBC suites, which no client needs at TLS 1.2 except
// Windows 7 with an RSA certificate (docs/clients.md, "Outlook on Windows 7
// speaks only TLS 1.0"), served by a listener of its own.
var modernSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// tlsPolicy returns a server tls.Config for a minimum version and the
// configured suites (nil: the policy's own). The policy's own suites are
// pinned rather than Go's defaults: modernSuites from TLS 1.2 up, and
// modernSuites plus legacySuites below 1.2, so lowering the version enables
// exactly what Windows 7 needs and no RSA key exchange, 3DES or RC4, even if
// a future Go changes its defaults. TLS 1.3 suites are not configurable in
// Go, and all of them are fine.
func tlsPolicy(minVersion uint16, suites []uint16) *tls.Config {
	tc := &tls.Config{MinVersion: minVersion, CipherSuites: suites}
	if suites == nil {
		tc.CipherSuites = slices.Clone(modernSuites)
		if minVersion < tls.VersionTLS12 {
			tc.CipherSuites = slices.Concat(modernSuites, legacySuites)
		}
	}
	return tc
}
