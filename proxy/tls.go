package proxy

import "fmt"

// TLSMode says how a listener or an upstream connection gets TLS.
type TLSMode string

// TLS modes, as written in the config.
const (
	TLSImplicit TLSMode = "implicit" // TLS from the first byte (993, 465)
	TLSStartTLS TLSMode = "starttls" // plaintext greeting, then STARTTLS (143, 587)
	TLSNone     TLSMode = "none"     // no TLS at all: loopback or forced only
)

// ParseTLSMode checks a TLS mode name.
func ParseTLSMode(s string) (TLSMode, error) {
	switch m := TLSMode(s); m {
	case TLSImplicit, TLSStartTLS, TLSNone:
		return m, nil
	}
	return "", fmt.Errorf("unknown tls mode %q (want implicit, starttls or none)", s)
}
