package proxy

import (
	"bytes"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mailgate/internal/selfsigned"
)

// countConn counts the writes that reach the socket.
type countConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// batchTLSPair returns a TLS connection pair over loopback TCP whose server
// end is layered over a batchConn, as a Front's connections are, and the
// write counter under it.
func batchTLSPair(t *testing.T) (server, client *tls.Conn, b *batchConn, cc *countConn) {
	t.Helper()
	cert, err := selfsigned.New(&selfsigned.Options{Hosts: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	near, far := tcpPair(t)
	cc = &countConn{Conn: near}
	b = newBatchConn(cc)
	server = tls.Server(b, &tls.Config{Certificates: []tls.Certificate{cert.TLS}})
	client = tls.Client(far, &tls.Config{RootCAs: cert.Pool, ServerName: "localhost"})
	errc := make(chan error, 1)
	go func() { errc <- client.Handshake() }()
	if err := server.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return server, client, b, cc
}

// Corked, the records of one big TLS write reach the socket in one write,
// and the peer reads the same bytes.
func TestBatchCorkOneWrite(t *testing.T) {
	server, client, b, cc := batchTLSPair(t)
	data := make([]byte, bulkBufSize)
	rand.NewChaCha8([32]byte{1}).Read(data)
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 2*len(data))
		n, _ := io.ReadFull(client, buf[:2*len(data)])
		got <- buf[:n]
	}()
	w0 := cc.writes.Load()
	b.cork()
	if _, err := server.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := b.flush(); err != nil {
		t.Fatal(err)
	}
	if n := cc.writes.Load() - w0; n != 1 {
		t.Errorf("corked 64 KiB TLS write took %d socket writes, want 1", n)
	}
	w0 = cc.writes.Load()
	if _, err := server.Write(data); err != nil { // uncorked: one per record
		t.Fatal(err)
	}
	if n := cc.writes.Load() - w0; n < bulkBufSize/maxRecord {
		t.Errorf("uncorked 64 KiB TLS write took %d socket writes, want one per record", n)
	}
	if g := <-got; !bytes.Equal(g, append(bytes.Clone(data), data...)) {
		t.Fatalf("peer read %d bytes, not what was written", len(g))
	}
	if b.buf != nil {
		t.Error("buffer held after flush")
	}
}

// A write bigger than the corked buffer flushes what was gathered and
// goes through in order.
func TestBatchCorkOverflow(t *testing.T) {
	near, far := tcpPair(t)
	b := newBatchConn(near)
	b.cork()
	small, big := []byte("first "), bytes.Repeat([]byte("y"), batchMax+1)
	b.Write(small)
	b.Write(big)
	b.Write([]byte(" last"))
	if err := b.flush(); err != nil {
		t.Fatal(err)
	}
	near.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(far)
	want := append(append(bytes.Clone(small), big...), " last"...)
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d in order", len(got), len(want))
	}
}

// With noWait (the relay's drain), a *tls.Conn over a batchConn returns
// only what it can decrypt from what it read already, never waits, and
// loses nothing, a partial record included; then reading goes on to EOF.
func TestBatchNoWait(t *testing.T) {
	server, client, b, _ := batchTLSPair(t)
	data := make([]byte, 300<<10+17)
	rand.NewChaCha8([32]byte{2}).Read(data)
	go func() {
		client.Write(data)
		client.CloseWrite()
	}()
	var got []byte
	buf := make([]byte, 1000)
	for round := 0; len(got) < len(data)/2; round++ {
		n, err := server.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatal(err)
		}
		b.noWait = round%3 == 0 // as drain does, between waiting reads
		for b.noWait {
			n, err := server.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil && !isTimeout(err) {
				t.Fatal(err)
			}
			b.noWait = err == nil
		}
	}
	rest, err := io.ReadAll(server)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, rest...)
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, want %d, same bytes", len(got), len(data))
	}
}

// The relay with TLS on both legs, batchConn under the proxy's ends as in
// the daemon: writes of every size around the buffer and record sizes,
// both ways at once, arrive byte for byte, and a half-close passes.
func TestRelayTLSBatchedBoundaries(t *testing.T) {
	pc, client, _, _ := batchTLSPair(t)
	pu, upstream, _, _ := batchTLSPair(t)
	res := make(chan relayResult, 1)
	go func() {
		st, err := Relay(pc, pu, nil, nil, time.Minute, RelayCounters{})
		res <- relayResult{st, err}
	}()
	sizes := []int{1, relaySmall - 1, relaySmall, relaySmall + 1, drainFrom - 1, drainFrom, drainFrom + 1,
		maxRecord - 1, maxRecord, maxRecord + 1, bulkBufSize - 1, bulkBufSize, bulkBufSize + 1, 3 << 20}
	up := pattern(5, sizes)
	down := pattern(6, sizes)
	var wg sync.WaitGroup
	var toUp, toClient []byte
	wg.Go(func() { toUp, _ = io.ReadAll(upstream) })
	wg.Go(func() { toClient, _ = io.ReadAll(client) })
	wg.Go(func() {
		for _, p := range up {
			client.Write(p)
		}
		client.CloseWrite() // close_notify: the relay half-closes upstream
	})
	for _, p := range down {
		upstream.Write(p)
	}
	upstream.CloseWrite()
	wg.Wait()
	if !bytes.Equal(toUp, bytes.Join(up, nil)) || !bytes.Equal(toClient, bytes.Join(down, nil)) {
		t.Fatalf("relayed %d up and %d down, not the bytes written", len(toUp), len(toClient))
	}
	client.Close()
	upstream.Close()
	if r := <-res; r.st.ClientToUpstream != int64(len(toUp)) || r.st.UpstreamToClient != int64(len(toClient)) {
		t.Fatalf("stats %+v err %v", r.st, r.err)
	}
}

// pattern returns random chunks of the given sizes.
func pattern(seed byte, sizes []int) [][]byte {
	r := rand.NewChaCha8([32]byte{seed})
	var out [][]byte
	for _, n := range sizes {
		p := make([]byte, n)
		r.Read(p)
		out = append(out, p)
	}
	return out
}
