package proxytest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"regexp"
	"syscall"
	"testing"
)

// Converse is one fuzzed pre-auth conversation: it dials addr, takes the
// server side from accept (a Front's listener, so that limits, tracking
// and the pre-auth deadline apply as in Serve), runs serve on it, sends in
// and half-closes (TCP rather than net.Pipe, for the EOF), and checks that
// every line the server answers matches reply (CRLF stripped) until it
// closes.
func Converse(t *testing.T, addr string, accept func() (net.Conn, error), serve func(net.Conn), in []byte, reply *regexp.Regexp) {
	t.Helper()
	client, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := accept()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve(server)
	}()
	go func() {
		client.Write(in)
		// No more input: the server sees EOF once it has read it all.
		client.(*net.TCPConn).CloseWrite()
	}()
	br := bufio.NewReader(client)
	for {
		line, err := br.ReadString('\n')
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			break // a reset: the server closed with input unread
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if !reply.MatchString(line[:len(line)-1]) {
			t.Fatalf("malformed reply %q to %q", line, in)
		}
	}
	<-done
}
