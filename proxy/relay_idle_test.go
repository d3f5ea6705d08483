package proxy

import (
	"io"
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

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting: %s", what)
}
