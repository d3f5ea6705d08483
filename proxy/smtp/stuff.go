package smtp

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"sync"
)

// stuffBufSize is the stuffer's write buffer: four TLS records, sent
// corked in one system call (upstreamWriter).
const stuffBufSize = 64 << 10

// holdMax bounds the partial line a stuffer holds back, as go-smtp's 4 KiB
// write buffer did: a longer line (RFC 5322 allows 998 characters, some
// mail has more) sends the rest of the message the slow way, through
// go-smtp's DotWriter.
const holdMax = 4 << 10

var stuffBufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, stuffBufSize) }}

// stuffer writes a message in DATA's encoding (RFC 5321 section 4.5.2: a
// dot doubled at the start of a line, every line ended by CRLF) exactly as
// net/textproto's DotWriter, which go-smtp's client uses, but a line at a
// time with bytes.IndexByte into a 64 KiB buffer on the upstream's TLS
// connection, where the DotWriter goes a byte at a time through a 4 KiB
// one: in the profile of a 30 MiB message that was a quarter of mailgate's
// CPU. go-smtp still ends the data: the stuffer holds back the last partial
// line, or the last line break, and Close writes it through the DotWriter,
// which then knows where the line stands when it adds CRLF "." CRLF. Held
// back is always a line break or text from the start of a line, where the
// DotWriter, fresh, assumes it is.
type stuffer struct {
	bw   *bufio.Writer
	dot  io.Writer // go-smtp's DotWriter (the DataCommand)
	held []byte
	hold int  // the most held before going slow (holdMax; tests less)
	bol  bool // the next byte written starts a line
	cr   bool // the DotWriter's state after what was written: CR
	slow bool // everything goes through dot
}

// newStuffer writes to tc, the connection go-smtp's client writes to, and
// ends through dot. Call Close, then dot's CloseWithResponse.
func newStuffer(tc net.Conn, dot io.Writer) *stuffer {
	bw := stuffBufs.Get().(*bufio.Writer)
	bw.Reset(tc)
	return &stuffer{bw: bw, dot: dot, bol: true, hold: holdMax}
}

// Write encodes p, but for what it holds back.
func (s *stuffer) Write(p []byte) (int, error) {
	if s.slow {
		return s.dot.Write(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	s.held = append(s.held, p...)
	cut := len(s.held) // s.held[:cut] is written now
	switch i := bytes.LastIndexByte(s.held, '\n'); {
	case i == len(s.held)-1 && i > 0 && s.crAfter(s.held[:i]):
		cut = i - 1 // CRLF
	case i == len(s.held)-1:
		cut = i
	case i >= 0:
		cut = i + 1
	default:
		cut = 0
	}
	if err := s.encode(s.held[:cut]); err != nil {
		return 0, err
	}
	s.held = append(s.held[:0], s.held[cut:]...)
	if len(s.held) > s.hold {
		return len(p), s.goSlow()
	}
	return len(p), nil
}

// encode writes b, doubling a dot that starts a line and giving a LF its
// CR unless the DotWriter's state machine saw one: after a run of CRs that
// state is "CR" only for an odd run (it leaves "CR" at the next CR).
// crlfWriter has made every CR a CRLF already; the rule matters only for
// writing exactly what the DotWriter would.
func (s *stuffer) encode(b []byte) error {
	for len(b) > 0 {
		if s.bol && b[0] == '.' {
			s.bw.WriteByte('.')
		}
		j := bytes.IndexByte(b, '\n')
		if j < 0 {
			s.bol, s.cr = false, s.crAfter(b)
			_, err := s.bw.Write(b)
			return err
		}
		s.bw.Write(b[:j])
		if !s.crAfter(b[:j]) {
			s.bw.WriteByte('\r')
		}
		if err := s.bw.WriteByte('\n'); err != nil {
			return err
		}
		s.bol, s.cr = true, false
		b = b[j+1:]
	}
	return nil
}

// crAfter reports whether the DotWriter's state is "CR" after b, written
// from the current state.
func (s *stuffer) crAfter(b []byte) bool {
	run := len(b) - len(bytes.TrimRight(b, "\r"))
	odd := run%2 == 1
	if run == len(b) && s.cr {
		return !odd
	}
	return odd
}

// Flush sends what was encoded (not what is held back).
func (s *stuffer) Flush() error {
	if s.slow {
		return nil
	}
	return s.bw.Flush()
}

// goSlow sends what is held, from the start of a line, and everything
// after it through the DotWriter.
func (s *stuffer) goSlow() error {
	if err := s.bw.Flush(); err != nil {
		return err
	}
	s.slow = true
	_, err := s.dot.Write(s.held)
	s.held = nil
	return err
}

// Close writes the buffer and what is held back (through the DotWriter)
// and gives the buffer back. The DotWriter is left for CloseWithResponse.
func (s *stuffer) Close() error {
	defer s.release()
	if s.slow {
		return nil
	}
	if err := s.bw.Flush(); err != nil {
		return err
	}
	_, err := s.dot.Write(s.held)
	return err
}

// release gives the buffer back; safe more than once.
func (s *stuffer) release() {
	if s.bw != nil {
		s.bw.Reset(nil)
		stuffBufs.Put(s.bw)
		s.bw = nil
	}
}
