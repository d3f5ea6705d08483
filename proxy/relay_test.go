package proxy

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (near, far net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		acc <- c
	}()
	near, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	far = <-acc
	t.Cleanup(func() { near.Close(); far.Close() })
	return near, far
}

type relayResult struct {
	st  RelayStats
	err error
}

// startRelay relays between two fresh pairs and returns the outer ends:
// client is the mail client's socket, upstream the mail server's.
func startRelay(t *testing.T, clientBuf, upBuf []byte, idle time.Duration) (client, upstream net.Conn, res chan relayResult) {
	t.Helper()
	client, proxyClient := tcpPair(t)
	proxyUp, upstream := tcpPair(t)
	res = make(chan relayResult, 1)
	go func() {
		st, err := Relay(proxyClient, proxyUp, clientBuf, upBuf, idle, RelayCounters{})
		res <- relayResult{st, err}
	}()
	return client, upstream, res
}

func TestRelayBufferedFirstAndHalfClose(t *testing.T) {
	client, upstream, res := startRelay(t, []byte("a1 NOOP\r\n"), []byte("* 1 EXISTS\r\n"), time.Minute)
	if _, err := client.Write([]byte("a2 LOGOUT\r\n")); err != nil {
		t.Fatal(err)
	}
	client.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(upstream)
	if err != nil || string(got) != "a1 NOOP\r\na2 LOGOUT\r\n" {
		t.Fatalf("upstream read %q, %v", got, err)
	}
	// The client half-closed; the upstream still answers and then closes.
	upstream.Write([]byte("* BYE\r\na2 OK\r\n"))
	upstream.Close()
	got, err = io.ReadAll(client)
	if err != nil || string(got) != "* 1 EXISTS\r\n* BYE\r\na2 OK\r\n" {
		t.Fatalf("client read %q, %v", got, err)
	}
	r := <-res
	if r.err != nil || r.st.End != EndClient || r.st.ClientToUpstream != 20 || r.st.UpstreamToClient != 26 {
		t.Fatalf("stats %+v err %v", r.st, r.err)
	}
}

func TestRelayLargeTransfer(t *testing.T) {
	client, upstream, res := startRelay(t, nil, nil, 0)
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	go func() {
		upstream.Write(data)
		upstream.Close()
	}()
	got, err := io.ReadAll(client)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v; want %d", len(got), err, len(data))
	}
	client.Close()
	r := <-res
	if r.st.End != EndUpstream || r.st.UpstreamToClient != int64(len(data)) {
		t.Fatalf("stats %+v err %v", r.st, r.err)
	}
}

func TestRelayIdleTimeout(t *testing.T) {
	client, _, res := startRelay(t, nil, nil, 50*time.Millisecond)
	r := <-res
	if r.err != nil || r.st.End != EndIdle {
		t.Fatalf("stats %+v err %v, want idle timeout", r.st, r.err)
	}
	// The proxy closed the client's connection.
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Fatal("client still open after idle timeout")
	}
}

func TestRelayClosedByProxy(t *testing.T) {
	client, proxyClient := tcpPair(t)
	proxyUp, _ := tcpPair(t)
	res := make(chan relayResult, 1)
	go func() {
		st, err := Relay(proxyClient, proxyUp, nil, nil, time.Hour, RelayCounters{})
		res <- relayResult{st, err}
	}()
	client.Write([]byte("x"))
	proxyClient.Close() // what a tracker's Session.Close does
	proxyUp.Close()
	r := <-res
	if r.err != nil || r.st.End != EndClosed {
		t.Fatalf("stats %+v err %v, want closed", r.st, r.err)
	}
}

// sumCounter is a ByteCounter for tests.
type sumCounter struct{ n atomic.Int64 }

func (c *sumCounter) Add(v float64) { c.n.Add(int64(v)) }

// The live counters see every byte the stats report, buffered bytes included.
func TestRelayCountersMatchStats(t *testing.T) {
	client, proxyClient := tcpPair(t)
	proxyUp, upstream := tcpPair(t)
	var up, down sumCounter
	res := make(chan relayResult, 1)
	go func() {
		st, err := Relay(proxyClient, proxyUp, []byte("a1 NOOP\r\n"), []byte("* OK\r\n"), time.Minute,
			RelayCounters{ClientToUpstream: &up, UpstreamToClient: &down})
		res <- relayResult{st, err}
	}()
	big := bytes.Repeat([]byte("x"), 100<<10)
	go func() { upstream.Write(big); upstream.(*net.TCPConn).CloseWrite() }()
	client.Write([]byte("a2 LOGOUT\r\n"))
	client.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, client)
	io.Copy(io.Discard, upstream)
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if up.n.Load() != r.st.ClientToUpstream || up.n.Load() != int64(len("a1 NOOP\r\na2 LOGOUT\r\n")) {
		t.Errorf("client->upstream counted %d, stats %d", up.n.Load(), r.st.ClientToUpstream)
	}
	if down.n.Load() != r.st.UpstreamToClient || down.n.Load() != int64(6+len(big)) {
		t.Errorf("upstream->client counted %d, stats %d", down.n.Load(), r.st.UpstreamToClient)
	}
}
