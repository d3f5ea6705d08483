package main

import (
	"net"
	"time"
)

// This kernel may lack sch_netem (tc netem). Then the far upstream is a
// delay line in user space: a loopback forwarder that holds every chunk
// for 20 ms in each direction, and the first client chunk 40 ms more, for
// the TCP handshake's round trip that a loopback connect does not pay.
const oneWay = 20 * time.Millisecond

// startDelayed forwards connections on a loopback listener to target
// through the delay line.
func startDelayed(target string) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go delayConn(c, target)
		}
	}()
	return ln, nil
}

func delayConn(c net.Conn, target string) {
	defer c.Close()
	u, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer u.Close()
	go func() { delayCopy(u, c, 2*oneWay); u.(*net.TCPConn).CloseWrite() }()
	delayCopy(c, u, 0)
}

type chunk struct {
	b   []byte
	due time.Time
}

// delayCopy copies src to dst, each chunk oneWay after it was read; the
// first one extra later.
func delayCopy(dst, src net.Conn, first time.Duration) {
	q := make(chan chunk, 4096)
	go func() {
		defer close(q)
		extra := first
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{b[:n], time.Now().Add(oneWay + extra)}
				extra = 0
			}
			if err != nil {
				return
			}
		}
	}()
	for ch := range q {
		time.Sleep(time.Until(ch.due))
		if _, err := dst.Write(ch.b); err != nil {
			for range q {
			}
			return
		}
	}
}
