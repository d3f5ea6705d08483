package smtp

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net/textproto"
	"testing"
)

// dotEncode is the reference: textproto's DotWriter over the whole message,
// CRLF "." CRLF included.
func dotEncode(msg []byte) []byte {
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	dw := textproto.NewWriter(bw).DotWriter()
	dw.Write(msg)
	dw.Close()
	return out.Bytes()
}

// viaStuffer writes msg in the given pieces through a stuffer whose end is a
// DotWriter on the same stream, as the relay does.
func viaStuffer(t *testing.T, pieces [][]byte, hold int) []byte {
	t.Helper()
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	dw := textproto.NewWriter(bw).DotWriter()
	s := &stuffer{bw: bufio.NewWriterSize(&out, 64), dot: dw, bol: true, hold: hold}
	for _, p := range pieces {
		if n, err := s.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dw.Close()
	return out.Bytes()
}

// The stuffer writes exactly what textproto's DotWriter writes, for
// messages of dots, CRs, LFs and text split anywhere: the fixed cases of
// SMTP smuggling and line ends, then random ones, also with a hold limit
// so small that long lines go the slow way.
func TestStufferMatchesDotWriter(t *testing.T) {
	fixed := []string{"", ".", "..", "\r\n", "\n", "\r", ".\r\n", "a\r\n.\r\nb", "x\r.\r\ny\r\n",
		"x\n.\nMAIL FROM:<a>\n", "a\r\n.", "a\r\n..\r\n", "abc", "\r\n\r\n.\r\n.", "a\rb\r\n"}
	for _, m := range fixed {
		for cut := 0; cut <= len(m); cut++ {
			pieces := [][]byte{[]byte(m[:cut]), []byte(m[cut:])}
			for _, hold := range []int{holdMax, 1} {
				if got, want := viaStuffer(t, pieces, hold), dotEncode([]byte(m)); !bytes.Equal(got, want) {
					t.Errorf("%q cut at %d, hold %d: wrote %q, DotWriter %q", m, cut, hold, got, want)
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(7, 7))
	alphabet := []byte(".\r\nab")
	for i := range 2000 {
		msg := make([]byte, r.IntN(300))
		for j := range msg {
			msg[j] = alphabet[r.IntN(len(alphabet))]
		}
		var pieces [][]byte
		for rest := msg; len(rest) > 0; {
			k := min(len(rest), r.IntN(40)+1)
			pieces, rest = append(pieces, rest[:k]), rest[k:]
		}
		hold := []int{holdMax, 3, 20}[i%3]
		if got, want := viaStuffer(t, pieces, hold), dotEncode(msg); !bytes.Equal(got, want) {
			t.Fatalf("%q in %d pieces, hold %d: wrote %q, DotWriter %q", msg, len(pieces), hold, got, want)
		}
	}
}

// FuzzStuffer: whatever message bytes a client sends, cut anywhere, the
// stuffer writes what textproto's DotWriter writes (no smuggled end of
// data, no lost or added byte).
func FuzzStuffer(f *testing.F) {
	for _, s := range []string{"a\r\n.\r\nb", "x\n.\nMAIL FROM:<a>\n", "..\r\n", "a\rb\r\n"} {
		f.Add([]byte(s), uint8(1), uint8(0))
	}
	f.Fuzz(func(t *testing.T, msg []byte, cut, holdSel uint8) {
		k := int(cut) % (len(msg) + 1)
		hold := []int{holdMax, 1, 3, 20}[holdSel%4]
		got := viaStuffer(t, [][]byte{msg[:k], msg[k:]}, hold)
		if want := dotEncode(msg); !bytes.Equal(got, want) {
			t.Fatalf("%q cut at %d, hold %d: wrote %q, DotWriter %q", msg, k, hold, got, want)
		}
	})
}
