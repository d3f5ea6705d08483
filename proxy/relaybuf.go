package proxy

import "net"

// hotBuf is the copy buffer of a hot direction: relayBufSize for commands
// and short responses, which is all most sessions ever send, and the bulk
// buffer from the first Read that brings drainFrom or more. Commands then
// cost what they did before bulk buffers: a session that opens, selects
// and idles never takes one.
type hotBuf struct {
	bp    *[]byte
	bulk  bool
	batch *batchConn // under src's TLS, for drain; nil: none
}

// newHotBuf takes a relayBufSize buffer for reading src.
func newHotBuf(src net.Conn) *hotBuf {
	relayBufsOut.Add(1)
	return &hotBuf{bp: relayBufs.Get().(*[]byte), batch: batcherOf(src)}
}

func (h *hotBuf) buf() []byte { return *h.bp }

// toBulk moves to the bulk buffer, keeping its first n bytes; once bulk,
// it stays until release.
func (h *hotBuf) toBulk(n int) {
	if h.bulk {
		return
	}
	big := bulkBufs.Get().(*[]byte)
	copy(*big, (*h.bp)[:n])
	relayBufs.Put(h.bp)
	h.bp, h.bulk = big, true
}

// release gives the buffers back.
func (h *hotBuf) release() {
	if h.bulk {
		bulkBufs.Put(h.bp)
	} else {
		relayBufs.Put(h.bp)
	}
	relayBufsOut.Add(-1)
}
