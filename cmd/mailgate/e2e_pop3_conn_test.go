package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// popConn is a raw POP3 client: it shows mailgate's replies exactly.
type popConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

// dialPOP3 connects to addr and reads the greeting; with stls it upgrades
// with STLS first (RFC 2595 section 4).
func (p *pop3E2E) dialPOP3(addr string, stls bool) *popConn {
	p.t.Helper()
	var conn net.Conn
	var err error
	if stls {
		conn, err = net.Dial("tcp", addr)
	} else {
		conn, err = tls.Dial("tcp", addr, p.tls)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { conn.Close() })
	c := &popConn{t: p.t, c: conn, r: bufio.NewReader(conn)}
	c.ok(c.line())
	if stls {
		c.must("STLS")
		tc := tls.Client(conn, p.tls)
		if err := tc.Handshake(); err != nil {
			p.t.Fatalf("STLS handshake: %v", err)
		}
		c.c, c.r = tc, bufio.NewReader(tc)
	}
	return c
}

func (c *popConn) line() string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(60 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (after %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (c *popConn) ok(reply string) string {
	c.t.Helper()
	if !strings.HasPrefix(reply, "+OK") {
		c.t.Fatalf("want +OK, got %q", reply)
	}
	return reply
}

// cmd sends one command line and returns the reply's first line.
func (c *popConn) cmd(line string) string {
	c.t.Helper()
	if _, err := io.WriteString(c.c, line+"\r\n"); err != nil {
		c.t.Fatalf("write %q: %v", line, err)
	}
	return c.line()
}

func (c *popConn) must(line string) string {
	c.t.Helper()
	r := c.cmd(line)
	if !strings.HasPrefix(r, "+OK") {
		c.t.Fatalf("%s: %q", line, r)
	}
	return r
}

// multi reads a multi-line body up to the terminating "." and undoes dot
// stuffing (RFC 1939 section 3), keeping every CRLF.
func (c *popConn) multi() []byte {
	c.t.Helper()
	var b bytes.Buffer
	for {
		c.c.SetReadDeadline(time.Now().Add(60 * time.Second))
		l, err := c.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			b.Write(l) // a long line: no terminator or stuffing in its middle
			continue
		}
		if err != nil {
			c.t.Fatalf("read multi-line: %v", err)
		}
		if string(l) == ".\r\n" {
			return b.Bytes()
		}
		b.Write(bytes.TrimPrefix(l, []byte(".")))
	}
}

// retr returns message n as the server holds it.
func (c *popConn) retr(n int) []byte {
	c.t.Helper()
	c.must(fmt.Sprint("RETR ", n))
	return c.multi()
}

func (c *popConn) login(user, pass string) {
	c.t.Helper()
	c.must("USER " + user)
	c.must("PASS " + pass)
}

// closed reports whether the server closed the connection within 30 s
// (a hang guard, not a timing assertion).
func (c *popConn) closed() bool {
	c.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err := c.r.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func plainResp(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}
