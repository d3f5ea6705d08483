package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// FuzzRelayCopy drives one direction of the relay (copy, with its small
// buffer, hot, move, drain and the bulk buffer) from a script of what the
// source has received and when: data of any size, arriving in pieces of at
// most a TLS record, gaps that a waiting read sits out, and gaps that end
// a waiting read with its deadline. Whatever the script, the destination
// gets every byte once and in order, the count equals what it accepted, a
// write error ends the copy with only a prefix written and counted, EOF
// half-closes, and the pooled buffers go back.
func FuzzRelayCopy(f *testing.F) {
	f.Add([]byte{0x40, 0x45, 0x4a, 0x80, 0x4c, 0xc0, 0x4f, 0x01})
	f.Add([]byte{0x43, 0x44, 0x4b, 0x4b, 0x4b, 0x4b, 0xc0, 0x4e, 0x4e, 0x80, 0x00})
	f.Add([]byte{0xff, 0x09, 0x4c, 0x4c, 0x4c, 0x4c, 0x4c, 0x4c})
	f.Add([]byte{0x44, 0x80, 0x44, 0xc0, 0x44, 0x3f, 0x41})
	f.Fuzz(func(t *testing.T, script []byte) {
		src, want, failAt := scriptedSource(script)
		dst := &sinkConn{failAt: failAt}
		r := &relay{}
		var n int64
		var counted sumCounter
		err := r.copy(dst, src, nil, &n, &counted, EndUpstream)
		got := dst.got.Bytes()
		switch {
		case failAt >= 0 && len(want) > failAt:
			if !errors.Is(err, errSinkFull) {
				t.Fatalf("copy = %v, want the write error", err)
			}
		case err != nil:
			t.Fatalf("copy = %v, want nil at EOF", err)
		case !dst.closedWrite:
			t.Fatal("EOF did not half-close the destination")
		}
		if !bytes.Equal(got, want[:len(got)]) || (err == nil && len(got) != len(want)) {
			t.Fatalf("destination got %d bytes, want %d, a prefix of them", len(got), len(want))
		}
		if n != int64(len(got)) || counted.n.Load() != n {
			t.Fatalf("%d bytes written, counted %d and %d", len(got), n, counted.n.Load())
		}
		waitFor(t, "pooled relay buffers given back", func() bool { return relayBufsOut.Load() == 0 })
	})
}

// The sizes of a script's data, around the relay's buffers and a record.
var scriptSizes = []int{1, 2, 100, relaySmall - 1, relaySmall, relaySmall + 1, drainFrom - 1, drainFrom,
	drainFrom + 1, maxRecord - 1, maxRecord, maxRecord + 1, bulkBufSize - 1, bulkBufSize, bulkBufSize + 1, 200 << 10}

// scriptedSource reads script a byte at a time: the top two bits say what
// the source receives next: 0, data of (low 6 bits + 1) bytes; 1, data of
// a size around a buffer (scriptSizes); 2, a gap a waiting read sits out;
// 3, a gap after which a waiting read times out. An odd first byte makes
// the destination refuse writes after a number of bytes the second byte
// gives. It returns the source, the data in order and that number (-1:
// none).
func scriptedSource(script []byte) (*scriptConn, []byte, int) {
	failAt := -1
	if len(script) >= 2 && script[0]&1 == 1 {
		failAt = int(script[1]) * 1021
		script = script[2:]
	}
	src := &scriptConn{}
	var all []byte
	for _, b := range script {
		switch b >> 6 {
		case 0, 1:
			size := int(b&63) + 1
			if b>>6 == 1 {
				size = scriptSizes[int(b&63)%len(scriptSizes)]
			}
			if len(all)+size > 1<<20 {
				continue
			}
			p := make([]byte, size)
			for i := range p {
				pos := len(all) + i
				p[i] = byte(pos ^ pos>>8 ^ pos>>16) // a position-dependent pattern: reordering shows
			}
			all = append(all, p...)
			src.events = append(src.events, scriptEvent{data: p})
		case 2:
			src.events = append(src.events, scriptEvent{gap: true})
		case 3:
			src.events = append(src.events, scriptEvent{gap: true, timeout: true})
		}
	}
	return src, all, failAt
}

type scriptEvent struct {
	data         []byte
	gap, timeout bool
}

// scriptConn is a source that behaves as a *tls.Conn does toward the
// relay: a Read returns at most one record's worth, and with a read
// deadline in the past only what has been received, before the next gap.
type scriptConn struct {
	net.Conn
	events   []scriptEvent
	deadline time.Time
}

func (c *scriptConn) Read(p []byte) (int, error) {
	noWait := !c.deadline.IsZero() && c.deadline.Before(time.Now())
	for len(c.events) > 0 && c.events[0].gap {
		if noWait {
			return 0, os.ErrDeadlineExceeded
		}
		ev := c.events[0]
		c.events = c.events[1:]
		if ev.timeout {
			return 0, os.ErrDeadlineExceeded
		}
	}
	if len(c.events) == 0 {
		return 0, io.EOF
	}
	ev := &c.events[0]
	k := copy(p[:min(len(p), maxRecord)], ev.data)
	if ev.data = ev.data[k:]; len(ev.data) == 0 {
		c.events = c.events[1:]
	}
	return k, nil
}

func (c *scriptConn) SetReadDeadline(t time.Time) error { c.deadline = t; return nil }
func (c *scriptConn) CloseRead() error                  { return nil }

var errSinkFull = errors.New("sink refuses writes")

// sinkConn is a destination that keeps what it is written, and refuses
// writes past failAt bytes (< 0: never), accepting the part before.
type sinkConn struct {
	net.Conn
	got         bytes.Buffer
	failAt      int
	closedWrite bool
}

func (c *sinkConn) Write(p []byte) (int, error) {
	if c.failAt >= 0 && c.got.Len()+len(p) > c.failAt {
		k := max(0, c.failAt-c.got.Len())
		c.got.Write(p[:k])
		return k, errSinkFull
	}
	return c.got.Write(p)
}

func (c *sinkConn) CloseWrite() error { c.closedWrite = true; return nil }
