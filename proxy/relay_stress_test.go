package proxy

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"mailgate/internal/selfsigned"
)

// stressCase is one session of TestRelayStress: what each outer end sends
// after the hand-off, what was read ahead at the hand-off, and how the
// writers behave.
type stressCase struct {
	seed             uint64
	up, down         int // bytes the client and the upstream write through the relay
	clientBuf, upBuf int // bytes read ahead at the hand-off (bufio's 4096 at most in the front ends)
	idle             time.Duration
	pauses           bool // writers and the TCP under their TLS pause now and then
	cold             bool // once, mid-record, a pause past relayHot: the direction goes back to the small buffer
}

// TestRelayStress relays random payloads both ways at once through Relay,
// over TLS on loopback with a batchConn under the proxy's ends and the
// client leg in a QuietConn, as in the daemon. Writes are of random sizes
// (1 byte to 200 KiB, often around the small, drain, record, bulk and batch
// sizes); the outer ends' TLS records reach the proxy cut into random TCP
// pieces, so its reads meet partial records; each side half-closes (TLS
// close_notify) when done while the other may still send. Every byte must
// arrive once, in order (SHA-256), the stats and the live counters must
// equal the bytes moved, and the relay must give back its pooled buffers
// and leave no goroutine behind. Deadlines are hang guards only.
func TestRelayStress(t *testing.T) {
	const MiB = 1 << 20
	cases := []stressCase{
		{seed: 1, up: 0, down: 3 * MiB, idle: time.Minute}, // the client half-closes at once
		{seed: 2, up: 3 * MiB, down: 0, clientBuf: 4096, upBuf: 1, idle: time.Minute},
		{seed: 3, up: 2 * MiB, down: 2 * MiB, clientBuf: 37, upBuf: 4096, idle: time.Minute, pauses: true},
		{seed: 4, up: maxRecord - 1, down: maxRecord + 1, clientBuf: 1, upBuf: 4095, idle: time.Minute, pauses: true},
		{seed: 5, up: drainFrom, down: bulkBufSize + 1, clientBuf: 4096, upBuf: 4096, idle: time.Minute},
		{seed: 6, up: bulkBufSize, down: batchMax + 1, idle: 0, pauses: true},
		{seed: 7, up: 0, down: 0, clientBuf: 4096, upBuf: 512, idle: time.Minute}, // only the read-ahead
		{seed: 8, up: 4 * MiB, down: 4 * MiB, clientBuf: 100, upBuf: 200, idle: time.Minute},
		{seed: 9, up: 1 * MiB, down: 1 * MiB, clientBuf: 4096, upBuf: 4096, idle: time.Minute, pauses: true, cold: true},
		{seed: 10, up: relaySmall, down: relaySmall + 1, idle: time.Minute, pauses: true},
	}
	cert, err := selfsigned.New(&selfsigned.Options{Hosts: []string{"localhost"}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
	cli := &tls.Config{RootCAs: cert.Pool, ServerName: "localhost"}
	for _, tc := range cases {
		if raceEnabled { // the race detector makes each byte some 10x dearer
			tc.up, tc.down = scaleDown(tc.up), scaleDown(tc.down)
		}
		t.Run(fmt.Sprintf("seed%d", tc.seed), func(t *testing.T) { stressRelay(t, tc, srv, cli) })
	}
}

// scaleDown divides the large totals by 8 and leaves those around a
// buffer size, which are what a case is about, alone.
func scaleDown(n int) int {
	if n > 1<<20 {
		return n / 8
	}
	return n
}

func stressRelay(t *testing.T, tc stressCase, srv, cli *tls.Config) {
	base := runtime.NumGoroutine()
	rng := rand.New(rand.NewPCG(tc.seed, 0))
	longPause := -1
	if tc.cold {
		longPause = tc.down / 2
	}
	client, pc := stressTLSPair(t, srv, cli, false, tc, rng.Uint64(), -1)
	upstream, pu := stressTLSPair(t, srv, cli, true, tc, rng.Uint64(), longPause)
	// A hang guard, not a timing assertion.
	guard := time.Now().Add(60 * time.Second)
	client.SetDeadline(guard)
	upstream.SetDeadline(guard)

	clientBuf, upBuf := randBytes(rng, tc.clientBuf), randBytes(rng, tc.upBuf)
	upChunks, downChunks := stressChunks(rng, tc.up), stressChunks(rng, tc.down)
	var up, down sumCounter
	qc := NewQuietConn(pc, func() { pc.Close(); pu.Close() })
	res := make(chan relayResult, 1)
	go func() {
		st, err := Relay(qc, pu, clientBuf, upBuf, tc.idle, RelayCounters{ClientToUpstream: &up, UpstreamToClient: &down})
		res <- relayResult{st, err}
	}()

	var wg sync.WaitGroup
	var gotUp, gotDown [sha256.Size]byte
	var nUp, nDown int64
	var errs [4]error
	wg.Go(func() { nUp, gotUp, errs[0] = stressRead(upstream, rand.New(rand.NewPCG(tc.seed, 1)), tc.pauses) })
	wg.Go(func() { nDown, gotDown, errs[1] = stressRead(client, rand.New(rand.NewPCG(tc.seed, 2)), tc.pauses) })
	wg.Go(func() { errs[2] = stressWrite(client, upChunks, rand.New(rand.NewPCG(tc.seed, 3)), tc.pauses) })
	wg.Go(func() { errs[3] = stressWrite(upstream, downChunks, rand.New(rand.NewPCG(tc.seed, 4)), tc.pauses) })
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	wantUp := sha256.Sum256(append(bytes.Clone(clientBuf), bytes.Join(upChunks, nil)...))
	wantDown := sha256.Sum256(append(bytes.Clone(upBuf), bytes.Join(downChunks, nil)...))
	lenUp, lenDown := int64(len(clientBuf)+tc.up), int64(len(upBuf)+tc.down)
	if nUp != lenUp || gotUp != wantUp {
		t.Errorf("upstream read %d bytes, want %d; same bytes: %v", nUp, lenUp, gotUp == wantUp)
	}
	if nDown != lenDown || gotDown != wantDown {
		t.Errorf("client read %d bytes, want %d; same bytes: %v", nDown, lenDown, gotDown == wantDown)
	}

	var r relayResult
	select {
	case r = <-res:
	case <-time.After(time.Until(guard)):
		t.Fatalf("relay did not end after both sides closed:\n%s", stacks())
	}
	if r.err != nil || (r.st.End != EndClient && r.st.End != EndUpstream) {
		t.Errorf("relay ended %q, %v; want a clean end", r.st.End, r.err)
	}
	if r.st.ClientToUpstream != lenUp || up.n.Load() != lenUp {
		t.Errorf("client->upstream: stats %d, counted %d, moved %d", r.st.ClientToUpstream, up.n.Load(), lenUp)
	}
	if r.st.UpstreamToClient != lenDown || down.n.Load() != lenDown {
		t.Errorf("upstream->client: stats %d, counted %d, moved %d", r.st.UpstreamToClient, down.n.Load(), lenDown)
	}
	for _, nc := range []net.Conn{pc, pu} {
		b := findBatch(nc)
		b.mu.Lock()
		if b.buf != nil {
			t.Error("a batchConn still holds its buffer after the relay ended")
		}
		b.mu.Unlock()
	}
	client.Close()
	upstream.Close()
	waitFor(t, "pooled relay buffers given back", func() bool { return relayBufsOut.Load() == 0 })
	for deadline := time.Now().Add(20 * time.Second); runtime.NumGoroutine() > base; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, stacks())
		}
	}
}

// stressTLSPair returns the outer end (the mail client's or the upstream
// server's TLS) and the proxy's end, over a batchConn, of one leg. The
// outer end writes through a pieceConn; longPause >= 0 makes it stop past
// relayHot once, after that many bytes.
func stressTLSPair(t *testing.T, srv, cli *tls.Config, upstreamLeg bool, tc stressCase, seed uint64, longPause int) (outer, proxyEnd *tls.Conn) {
	t.Helper()
	near, far := tcpPair(t)
	pieces := &pieceConn{Conn: far, rng: rand.New(rand.NewPCG(seed, 5)), pauses: tc.pauses, longPauseAt: int64(longPause)}
	if upstreamLeg {
		proxyEnd, outer = tls.Client(newBatchConn(near), cli), tls.Server(pieces, srv)
	} else {
		proxyEnd, outer = tls.Server(newBatchConn(near), srv), tls.Client(pieces, cli)
	}
	errc := make(chan error, 1)
	go func() { errc <- outer.Handshake() }()
	if err := proxyEnd.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	pieces.mu.Lock()
	pieces.split = true // from here on, the relayed bytes
	pieces.mu.Unlock()
	return outer, proxyEnd
}

// pieceConn cuts what a TLS end writes into random pieces, each its own
// TCP write, so that the proxy's TLS reads partial records; with pauses it
// sleeps a little now and then between pieces, and once past relayHot at
// longPauseAt bytes.
type pieceConn struct {
	net.Conn
	mu          sync.Mutex
	rng         *rand.Rand
	split       bool
	pauses      bool
	written     int64
	longPauseAt int64 // < 0: never
}

func (c *pieceConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.split {
		return c.Conn.Write(p)
	}
	done := 0
	for done < len(p) {
		k := min(len(p)-done, 1+c.rng.IntN(24<<10))
		if c.longPauseAt >= 0 && c.written+int64(k) > c.longPauseAt && done+1 < len(p) {
			k = max(1, int(c.longPauseAt-c.written)) // stop inside the record
			c.longPauseAt = -1
			m, err := c.Conn.Write(p[done : done+k])
			c.written += int64(m)
			if done += m; err != nil {
				return done, err
			}
			time.Sleep(relayHot + 200*time.Millisecond)
			continue
		}
		m, err := c.Conn.Write(p[done : done+k])
		c.written += int64(m)
		if done += m; err != nil {
			return done, err
		}
		if c.pauses && c.rng.IntN(64) == 0 {
			time.Sleep(time.Duration(c.rng.IntN(2000)) * time.Microsecond)
		}
	}
	return done, nil
}

// stressChunks returns random writes adding up to total: half of them
// around a buffer or record size, the rest 1 byte to 200 KiB.
func stressChunks(rng *rand.Rand, total int) [][]byte {
	sizes := []int{1, relaySmall - 1, relaySmall, relaySmall + 1, drainFrom - 1, drainFrom, drainFrom + 1,
		maxRecord - 1, maxRecord, maxRecord + 1, bulkBufSize - 1, bulkBufSize, bulkBufSize + 1,
		batchMax - 1, batchMax, batchMax + 1}
	var out [][]byte
	for total > 0 {
		n := 1 + rng.IntN(200<<10)
		if rng.IntN(2) == 0 {
			n = sizes[rng.IntN(len(sizes))]
		}
		n = min(n, total)
		out = append(out, randBytes(rng, n))
		total -= n
	}
	return out
}

func randBytes(rng *rand.Rand, n int) []byte {
	if n == 0 {
		return nil
	}
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// stressWrite writes chunks, pausing now and then, and half-closes.
func stressWrite(c *tls.Conn, chunks [][]byte, rng *rand.Rand, pauses bool) error {
	for _, p := range chunks {
		if _, err := c.Write(p); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if pauses && rng.IntN(8) == 0 {
			time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		}
	}
	if err := c.CloseWrite(); err != nil {
		return fmt.Errorf("close_notify: %w", err)
	}
	return nil
}

// stressRead reads to EOF in reads of random sizes, pausing now and then
// (so that the relay's writes block), and returns the count and hash.
func stressRead(c *tls.Conn, rng *rand.Rand, pauses bool) (int64, [sha256.Size]byte, error) {
	h := sha256.New()
	buf := make([]byte, 128<<10)
	var n int64
	for {
		k, err := c.Read(buf[:1+rng.IntN(len(buf))])
		h.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			var sum [sha256.Size]byte
			h.Sum(sum[:0])
			return n, sum, nil
		}
		if err != nil {
			return n, [sha256.Size]byte{}, fmt.Errorf("read after %d bytes: %w", n, err)
		}
		if pauses && rng.IntN(32) == 0 {
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		}
	}
}

func stacks() []byte {
	buf := make([]byte, 1<<20)
	return buf[:runtime.Stack(buf, true)]
}
