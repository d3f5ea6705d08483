package proxy

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

func TestReadLine(t *testing.T) {
	long := strings.Repeat("a", 5000) // past bufio's 4096-byte buffer
	tests := []struct {
		in, want string
		max      int
		err      error
	}{
		{in: "NOOP\r\nnext", want: "NOOP", max: 10},
		{in: "NOOP\nnext", want: "NOOP", max: 10}, // a bare LF
		{in: "\r\n", want: "", max: 10},
		{in: "1234567890\r\n", want: "1234567890", max: 10},
		{in: "12345678901\r\n", max: 10, err: ErrLineTooLong},
		{in: long + "\r\n", want: long, max: 5000},
		{in: long + "\r\n", max: 4999, err: ErrLineTooLong},
		{in: "NOOP", want: "NOOP", max: 10, err: io.EOF}, // cut off
	}
	for _, tt := range tests {
		got, err := ReadLine(bufio.NewReader(strings.NewReader(tt.in)), tt.max)
		if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("%.20q max %d: err = %v, want %v", tt.in, tt.max, err, tt.err)
		}
		if string(got) != tt.want {
			t.Errorf("%.20q max %d: line = %.20q, want %.20q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestDrainEvery(t *testing.T) {
	tests := []struct{ quiet, want time.Duration }{
		{0, 10 * time.Millisecond},
		{20 * time.Millisecond, 10 * time.Millisecond},
		{200 * time.Millisecond, 50 * time.Millisecond},
		{2 * time.Second, 250 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := DrainEvery(tt.quiet); got != tt.want {
			t.Errorf("DrainEvery(%v) = %v, want %v", tt.quiet, got, tt.want)
		}
	}
}

// closeConn records Close.
type closeConn struct {
	net.Conn
	closed bool
}

func (c *closeConn) Close() error { c.closed = true; return nil }

// TestHandOffRelaysAfterLoop: the relay HandOff leaves runs in End, once,
// after the command loop returned, and End leaves the connection to it;
// any other end closes the connection and runs no relay.
func TestHandOffRelaysAfterLoop(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	nc := &closeConn{Conn: a}
	tc := &TextConn{Conn: nc, Writer: bufio.NewWriter(nc)}
	unwound, runs := false, 0
	err := tc.Loop(func() error {
		return tc.HandOff(func() {
			if !unwound {
				t.Error("the relay ran inside the command loop")
			}
			runs++
		})
	})
	if !errors.Is(err, ErrHandedOff) {
		t.Fatalf("Loop = %v, want ErrHandedOff", err)
	}
	unwound = true
	tc.End(err, slog.New(slog.DiscardHandler))
	tc.End(err, slog.New(slog.DiscardHandler))
	if runs != 1 || nc.closed {
		t.Errorf("relay ran %d times, connection closed %v; want once, left open", runs, nc.closed)
	}

	tc2 := &TextConn{Conn: nc, Writer: bufio.NewWriter(nc)}
	tc2.HandOff(func() { t.Error("relay ran after the loop ended otherwise") })
	tc2.End(io.EOF, slog.New(slog.DiscardHandler))
	if !nc.closed {
		t.Error("End(io.EOF) left the connection open")
	}
}
