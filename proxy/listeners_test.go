package proxy

import (
	"errors"
	"net"
	"testing"
)

func TestListeners(t *testing.T) {
	var ls Listeners
	a, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !ls.Add(a) || !ls.Add(b) || ls.Closed() {
		t.Fatal("Add refused before Close")
	}
	ls.Remove(b)
	if err := ls.Close(); err != nil || !ls.Closed() {
		t.Fatalf("Close = %v, Closed = %v", err, ls.Closed())
	}
	if _, err := a.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("registered listener still open: %v", err)
	}
	if ls.Add(b) {
		t.Fatal("Add accepted a listener after Close")
	}
	// A removed listener is left alone.
	c, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatalf("removed listener was closed: %v", err)
	}
	c.Close()
}
