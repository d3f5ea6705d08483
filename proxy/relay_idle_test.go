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

	"mailgate/internal/selfsigned"
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

// Shutdown's goodbye to a client that reads nothing gives up after
// goodbyeTimeout even while the client keeps sending: the relay's other
// direction then pushes the connection's write deadline idle ahead
// (touch), past the goodbye's own, and Shutdown, which asks its sessions
// one after the other on one goroutine, would wait as long as the client
// sends, past its grace period. The bound is a hang guard.
func TestRelayGoodbyeBoundedWhileClientSends(t *testing.T) {
	defer func(d time.Duration) { goodbyeTimeout = d }(goodbyeTimeout)
	goodbyeTimeout = 300 * time.Millisecond
	cert, err := selfsigned.New(&selfsigned.Options{Hosts: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	near, far := tcpPair(t)
	proxyClient := tls.Server(near, &tls.Config{Certificates: []tls.Certificate{cert.TLS}})
	client := tls.Client(far, &tls.Config{RootCAs: cert.Pool, ServerName: "localhost"})
	go client.Handshake()
	if err := proxyClient.Handshake(); err != nil {
		t.Fatal(err)
	}
	// The client reads nothing: fill what the kernel holds toward it,
	// under the TLS, so that the goodbye cannot be written. Until a write
	// gets nothing in: one cut short may leave room that loopback's window
	// updates then grow.
	junk := make([]byte, 64<<10)
	for {
		near.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := near.Write(junk); err != nil && n == 0 {
			break
		}
	}
	near.SetWriteDeadline(time.Time{})
	proxyUp, upstream := tcpPair(t)
	go io.Copy(io.Discard, upstream)
	qc := NewQuietConn(proxyClient, func() { proxyClient.Close(); proxyUp.Close() })
	go Relay(qc, proxyUp, nil, nil, 400*time.Millisecond, RelayCounters{})
	stop := make(chan struct{})
	defer close(stop)
	go func() { // an APPEND, a byte every 10 ms
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if _, err := client.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	ended := make(chan bool, 1)
	go func() { ended <- qc.EndIfQuiet(0, "* BYE shutting down\r\n") }()
	select {
	case ok := <-ended:
		if !ok {
			t.Fatal("a quiet session did not end")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the goodbye to a client that reads nothing is still being written after 20 s")
	}
}
