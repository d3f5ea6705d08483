package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// v2Header builds a version 2 header; src and dst must be the same family.
func v2Header(cmd byte, src, dst netip.AddrPort, tlv []byte) []byte {
	var body []byte
	fam := byte(0x11)
	if src.Addr().Is6() {
		fam = 0x21
	}
	body = append(body, src.Addr().AsSlice()...)
	body = append(body, dst.Addr().AsSlice()...)
	body = binary.BigEndian.AppendUint16(body, src.Port())
	body = binary.BigEndian.AppendUint16(body, dst.Port())
	body = append(body, tlv...)
	h := append([]byte{}, v2Sig...)
	h = append(h, 0x20|cmd, fam)
	h = binary.BigEndian.AppendUint16(h, uint16(len(body)))
	return append(h, body...)
}

func TestReadProxyHeader(t *testing.T) {
	v4 := netip.MustParseAddrPort("203.0.113.5:40000")
	v6 := netip.MustParseAddrPort("[2001:db8::5]:40001")
	dst4 := netip.MustParseAddrPort("10.0.0.1:993")
	dst6 := netip.MustParseAddrPort("[2001:db8::1]:993")
	tests := []struct {
		name string
		in   string
		want netip.AddrPort // zero: valid header without an address
		bad  bool
	}{
		{"v1 tcp4", "PROXY TCP4 203.0.113.5 10.0.0.1 40000 993\r\n", v4, false},
		{"v1 tcp6", "PROXY TCP6 2001:db8::5 2001:db8::1 40001 993\r\n", v6, false},
		{"v1 unknown", "PROXY UNKNOWN\r\n", netip.AddrPort{}, false},
		{"v1 unknown with addresses", "PROXY UNKNOWN ffff:: ffff:: 1 2\r\n", netip.AddrPort{}, false},
		{"v1 family mismatch", "PROXY TCP4 2001:db8::5 10.0.0.1 1 2\r\n", netip.AddrPort{}, true},
		{"v1 leading zero port", "PROXY TCP4 203.0.113.5 10.0.0.1 040000 993\r\n", netip.AddrPort{}, true},
		{"v1 big port", "PROXY TCP4 203.0.113.5 10.0.0.1 65536 993\r\n", netip.AddrPort{}, true},
		{"v1 no crlf", "PROXY TCP4 203.0.113.5 10.0.0.1 40000 993\n", netip.AddrPort{}, true},
		{"v1 too long", "PROXY UNKNOWN " + strings.Repeat("x", 200) + "\r\n", netip.AddrPort{}, true},
		{"v1 zone", "PROXY TCP6 fe80::1%eth0 fe80::2 1 2\r\n", netip.AddrPort{}, true},
		{"v2 tcp4", string(v2Header(1, v4, dst4, nil)), v4, false},
		{"v2 tcp6 with tlv", string(v2Header(1, v6, dst6, []byte{0x04, 0, 1, 'x'})), v6, false},
		{"v2 local", string(v2Header(0, v4, dst4, nil)), netip.AddrPort{}, false},
		{"v2 bad version", string(append(append([]byte{}, v2Sig...), 0x11, 0x11, 0, 0)), netip.AddrPort{}, true},
		{"v2 too long", string(append(append([]byte{}, v2Sig...), 0x21, 0x11, 0xff, 0xff)), netip.AddrPort{}, true},
		{"v2 udp", string(append(append([]byte{}, v2Sig...), 0x21, 0x12, 0, 0)), netip.AddrPort{}, true},
		{"v2 truncated", string(v2Header(1, v4, dst4, nil)[:20]), netip.AddrPort{}, true},
		{"no header", "a001 LOGIN ann secret\r\n", netip.AddrPort{}, true},
		{"empty", "", netip.AddrPort{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readProxyHeader(bufio.NewReader(strings.NewReader(tt.in + "rest")))
			if tt.bad {
				if !errors.Is(err, ErrProxyHeader) {
					t.Fatalf("got %v, %v; want ErrProxyHeader", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestProxyHeaderKeepsFollowingBytes(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("PROXY TCP4 203.0.113.5 10.0.0.1 1 2\r\nhello"))
	if _, err := readProxyHeader(br); err != nil {
		t.Fatal(err)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "hello" {
		t.Fatalf("after the header: %q", rest)
	}
}

// FuzzProxyHeader: never panics, never reads past a v1 line's limit, and an
// accepted address survives a round trip through a v1 line.
func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.5 10.0.0.1 40000 993\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(v2Header(1, netip.MustParseAddrPort("[2001:db8::5]:1"), netip.MustParseAddrPort("[::1]:2"), []byte{1, 0, 0}))
	f.Add(v2Header(0, netip.MustParseAddrPort("1.2.3.4:1"), netip.MustParseAddrPort("1.2.3.4:2"), nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		src, err := readProxyHeader(bufio.NewReader(bytes.NewReader(in)))
		if err != nil || !src.IsValid() {
			return
		}
		proto := "TCP4"
		if src.Addr().Is6() {
			proto = "TCP6"
		}
		line := "PROXY " + proto + " " + src.Addr().String() + " " + src.Addr().String() + " " +
			strconv.Itoa(int(src.Port())) + " 1\r\n"
		again, err := readProxyHeader(bufio.NewReader(strings.NewReader(line)))
		if err != nil || again != src {
			t.Fatalf("round trip of %v via %q: %v, %v", src, line, again, err)
		}
	})
}

// serveProxyProto runs a ProxyProtoListener on loopback that reports each
// accepted connection's RemoteAddr and first line.
func serveProxyProto(t *testing.T, trusted string) (addr string, got chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl := NewProxyProtoListener(ln, []netip.Prefix{netip.MustParsePrefix(trusted)}, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { pl.Close() })
	got = make(chan string, 10)
	go func() {
		for {
			c, err := pl.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			got <- c.RemoteAddr().String() + " " + line
			c.Close()
		}
	}()
	return ln.Addr().String(), got
}

func TestProxyProtoListener(t *testing.T) {
	addr, got := serveProxyProto(t, "127.0.0.0/8")
	for _, hdr := range []string{
		"PROXY TCP4 203.0.113.5 10.0.0.1 40000 993\r\n",
		string(v2Header(1, netip.MustParseAddrPort("203.0.113.5:40000"), netip.MustParseAddrPort("10.0.0.1:993"), nil)),
	} {
		nc := dialSend(t, addr, hdr+"hello\n")
		defer nc.Close()
		if g := <-got; g != "203.0.113.5:40000 hello\n" {
			t.Fatalf("accepted %q", g)
		}
	}
}

func TestProxyProtoListenerRefuses(t *testing.T) {
	for _, tc := range []struct{ name, trusted, send string }{
		{"untrusted peer", "192.0.2.0/24", "PROXY TCP4 203.0.113.5 10.0.0.1 40000 993\r\nhello\n"},
		{"trusted peer without header", "127.0.0.0/8", "a1 LOGIN ann secret\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, got := serveProxyProto(t, tc.trusted)
			nc := dialSend(t, addr, tc.send)
			defer nc.Close()
			nc.SetReadDeadline(time.Now().Add(10 * time.Second)) // hang guard
			if _, err := nc.Read(make([]byte, 1)); err == nil || isTimeout(err) {
				t.Fatalf("connection not closed: %v", err)
			}
			select {
			case g := <-got:
				t.Fatalf("accepted %q", g)
			default:
			}
		})
	}
}

func dialSend(t *testing.T, addr, s string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte(s))
	return nc
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
