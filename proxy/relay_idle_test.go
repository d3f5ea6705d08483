package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// A quiet session gives its big copy buffers back: only the small waiting
// buffers stay with an idle relay.
func TestRelayReleasesBuffersWhenQuiet(t *testing.T) {
	client, upstream, _ := startRelay(t, nil, nil, time.Minute)
	go io.Copy(io.Discard, client)
	big := make([]byte, 1<<20)
	if _, err := upstream.Write(big); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "big buffers released", func() bool { return relayBufsOut.Load() == 0 })
	// And it still relays after going quiet.
	if _, err := upstream.Write([]byte("* OK still here\r\n")); err != nil {
		t.Fatal(err)
	}
}

// Traffic in one direction keeps the whole session alive: the quiet
// direction's read deadline passes but the relay goes on.
func TestRelayOneWayTrafficIsNotIdle(t *testing.T) {
	client, upstream, res := startRelay(t, nil, nil, 300*time.Millisecond)
	go io.Copy(io.Discard, upstream)
	for range 12 {
		if _, err := client.Write([]byte("a NOOP\r\n")); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-res:
			t.Fatalf("relay ended during traffic: %v %v", r.st.End, r.err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	select {
	case r := <-res:
		if r.st.End != EndIdle {
			t.Fatalf("end = %v, want %v", r.st.End, EndIdle)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not end after going idle")
	}
}

// tlsPair is tcpPair with TLS on top, as both legs of a real session.
func tlsPair(t *testing.T, srv, cli *tls.Config) (near, far net.Conn) {
	t.Helper()
	n, f := tcpPair(t)
	return tls.Client(n, cli), tls.Server(f, srv)
}

// Commands of every size around the small waiting buffer cross a TLS relay
// whole and without waiting for more bytes, in both directions.
func TestRelayTLSRecordSizes(t *testing.T) {
	cf, kf := writeCert(t, t.TempDir(), "relay.test")
	cert, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	pemBytes, _ := os.ReadFile(cf)
	roots.AppendCertsFromPEM(pemBytes)
	srv := &tls.Config{Certificates: []tls.Certificate{cert}}
	cli := &tls.Config{RootCAs: roots, ServerName: "relay.test"}
	client, proxyClient := tlsPair(t, srv, cli)
	proxyUp, upstream := tlsPair(t, srv, cli)
	go Relay(proxyClient, proxyUp, nil, nil, time.Minute, RelayCounters{})
	for _, size := range []int{1, relaySmall - 1, relaySmall, relaySmall + 1, 2000, 16 << 10, 40000} {
		msg := bytes.Repeat([]byte{byte(size)}, size)
		roundTrip(t, client, upstream, msg)
		roundTrip(t, upstream, client, msg)
	}
}

// roundTrip writes msg on from and reads exactly it on to; the deadline is
// a hang guard, not a timing assertion.
func roundTrip(t *testing.T, from, to net.Conn, msg []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { _, err := from.Write(msg); errc <- err }()
	to.SetReadDeadline(time.Now().Add(20 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(to, got); err != nil {
		t.Fatalf("%d bytes: %v", len(msg), err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("%d bytes arrived changed", len(msg))
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
