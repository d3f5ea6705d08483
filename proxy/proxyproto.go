package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2) lets
// a load balancer tell us the client's address in a header that precedes
// the client's bytes.

// ErrProxyHeader is a missing or malformed PROXY protocol header.
var ErrProxyHeader = errors.New("bad proxy protocol header")

// v2Sig starts every version 2 header (section 2.2).
var v2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

const (
	// v1MaxLen is the longest version 1 line, CRLF included (section 2.1).
	v1MaxLen = 107
	// v2MaxLen bounds the address block and TLVs we accept; the format
	// allows 65535, but load balancers send a few hundred bytes at most.
	v2MaxLen = 4096
)

// readProxyHeader reads one header from br and returns the client's
// address. A valid header that carries none (v1 UNKNOWN, v2 LOCAL or an
// unspecified family: health checks) returns the zero AddrPort; the caller
// then keeps the peer's address.
func readProxyHeader(br *bufio.Reader) (netip.AddrPort, error) {
	// Byte by byte, so that a client that speaks first without a header
	// (or a short line) is refused at once rather than at the timeout.
	for n := 1; n <= len(v2Sig); n++ {
		b, err := br.Peek(n)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrProxyHeader, err)
		}
		switch {
		case bytes.HasPrefix([]byte("PROXY "), b) || bytes.HasPrefix(b, []byte("PROXY ")):
			if n >= len("PROXY ") {
				return readV1(br)
			}
		case !bytes.HasPrefix(v2Sig, b):
			return netip.AddrPort{}, fmt.Errorf("%w: no header", ErrProxyHeader)
		}
	}
	return readV2(br)
}

// readV1 parses "PROXY TCP4|TCP6 src dst sport dport\r\n" or
// "PROXY UNKNOWN ...\r\n" (section 2.1).
func readV1(br *bufio.Reader) (netip.AddrPort, error) {
	var line []byte
	for !bytes.HasSuffix(line, []byte("\r\n")) {
		if len(line) == v1MaxLen {
			return netip.AddrPort{}, fmt.Errorf("%w: v1 line too long", ErrProxyHeader)
		}
		b, err := br.ReadByte()
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrProxyHeader, err)
		}
		line = append(line, b)
	}
	f := strings.Split(string(line[:len(line)-2]), " ")
	if len(f) >= 2 && f[1] == "UNKNOWN" {
		return netip.AddrPort{}, nil // the rest of the line is to be ignored
	}
	if len(f) != 6 || (f[1] != "TCP4" && f[1] != "TCP6") {
		return netip.AddrPort{}, fmt.Errorf("%w: v1 fields", ErrProxyHeader)
	}
	src, err1 := netip.ParseAddr(f[2])
	dst, err2 := netip.ParseAddr(f[3])
	sport, err3 := parsePort(f[4])
	_, err4 := parsePort(f[5])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: v1: %w", ErrProxyHeader, err)
	}
	if src.Is4() != (f[1] == "TCP4") || dst.Is4() != src.Is4() || src.Zone() != "" || dst.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("%w: v1 address family", ErrProxyHeader)
	}
	return netip.AddrPortFrom(src, sport), nil
}

// parsePort takes a decimal port without sign or leading zeros.
func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, fmt.Errorf("port %q", s)
	}
	return uint16(n), nil
}

// readV2 parses the binary header (section 2.2): signature, version and
// command, family and protocol, length, then addresses and TLVs, which we
// skip.
func readV2(br *bufio.Reader) (netip.AddrPort, error) {
	var hdr [16]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrProxyHeader, err)
	}
	verCmd, fam, n := hdr[12], hdr[13], int(binary.BigEndian.Uint16(hdr[14:]))
	if verCmd>>4 != 2 || verCmd&0xf > 1 {
		return netip.AddrPort{}, fmt.Errorf("%w: v2 version or command %#x", ErrProxyHeader, verCmd)
	}
	if n > v2MaxLen {
		return netip.AddrPort{}, fmt.Errorf("%w: v2 length %d", ErrProxyHeader, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrProxyHeader, err)
	}
	if verCmd&0xf == 0 { // LOCAL: the balancer's own connection
		return netip.AddrPort{}, nil
	}
	switch fam {
	case 0x11: // TCP over IPv4: src(4) dst(4) sport(2) dport(2)
		if n < 12 {
			return netip.AddrPort{}, fmt.Errorf("%w: v2 short ipv4 block", ErrProxyHeader)
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:])), nil
	case 0x21: // TCP over IPv6: src(16) dst(16) sport(2) dport(2)
		if n < 36 {
			return netip.AddrPort{}, fmt.Errorf("%w: v2 short ipv6 block", ErrProxyHeader)
		}
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])), binary.BigEndian.Uint16(body[32:])), nil
	case 0x00: // UNSPEC: no address to use
		return netip.AddrPort{}, nil
	}
	return netip.AddrPort{}, fmt.Errorf("%w: v2 family %#x not tcp", ErrProxyHeader, fam)
}
