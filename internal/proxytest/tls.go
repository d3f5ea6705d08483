package proxytest

import (
	"crypto/tls"
	"testing"
	"time"

	"mailgate/internal/selfsigned"
)

// TLSPair returns a server config with a fresh self-signed certificate for
// "localhost" (docs/clients.md, "Clients ignore IP addresses in
// certificates") and a client config that trusts it.
func TLSPair(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	c, err := selfsigned.New(&selfsigned.Options{Hosts: []string{"localhost"}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	server = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &c.TLS, nil }}
	return server, &tls.Config{RootCAs: c.Pool, ServerName: "localhost"}
}
