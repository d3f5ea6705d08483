package main

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"mailgate/proxy"
)

// imapc is a minimal IMAP client that counts bytes and never parses more
// than it must, so that the client costs the same on every path measured.
type imapc struct {
	nc  net.Conn
	br  *bufio.Reader
	tag int
}

// login says how a client authenticates: app password (through mailgate)
// or XOAUTH2 with an access token (direct).
type login struct {
	user, pass, token string
}

func (l login) command() string {
	if l.token != "" {
		_, ir, _ := proxy.NewXOAUTH2Client(l.user, l.token).Start()
		return "AUTHENTICATE XOAUTH2 " + base64.StdEncoding.EncodeToString(ir)
	}
	return fmt.Sprintf("LOGIN %s %s", strconv.Quote(l.user), strconv.Quote(l.pass))
}

// dialIMAP connects with implicit TLS and reads the greeting.
func dialIMAP(addr string, cfg *tls.Config) (*imapc, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(nc, cfg)
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.Handshake(); err != nil {
		nc.Close()
		return nil, err
	}
	c := &imapc{nc: tc, br: bufio.NewReaderSize(tc, 64<<10)}
	if _, err := c.br.ReadString('\n'); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// loginIMAP dials and logs in; the session deadline is cleared.
func loginIMAP(addr string, cfg *tls.Config, l login) (*imapc, error) {
	c, err := dialIMAP(addr, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := c.cmd(l.command()); err != nil {
		c.Close()
		return nil, fmt.Errorf("login: %w", err)
	}
	c.nc.SetDeadline(time.Time{})
	return c, nil
}

func (c *imapc) Close() error { return c.nc.Close() }

// cmd sends one command and reads to its tagged OK; it returns the bytes
// read, literals included.
func (c *imapc) cmd(line string) (int64, error) {
	tag := c.send(line)
	return c.wait(tag)
}

func (c *imapc) send(line string) string {
	c.tag++
	tag := "b" + strconv.Itoa(c.tag)
	io.WriteString(c.nc, tag+" "+line+"\r\n")
	return tag
}

// wait reads responses, skipping literals, until the tagged one.
func (c *imapc) wait(tag string) (int64, error) {
	var n int64
	for {
		line, err := c.br.ReadString('\n')
		n += int64(len(line))
		if err != nil {
			return n, err
		}
		if lit, ok := literalSize(line); ok {
			m, err := io.CopyN(io.Discard, c.br, lit)
			n += m
			if err != nil {
				return n, err
			}
			continue
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return n, fmt.Errorf("%s", strings.TrimSpace(rest))
			}
			return n, nil
		}
	}
}

// literalSize finds a "{n}" at the end of a response line.
func literalSize(line string) (int64, bool) {
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(line[i+1:len(line)-1], "+"), 10, 64)
	return n, err == nil
}

// appendMsg appends msg with a non-synchronising literal (RFC 7888).
func (c *imapc) appendMsg(mailbox string, msg []byte) error {
	c.tag++
	tag := "b" + strconv.Itoa(c.tag)
	fmt.Fprintf(c.nc, "%s APPEND %s {%d+}\r\n", tag, mailbox, len(msg))
	if _, err := c.nc.Write(msg); err != nil {
		return err
	}
	io.WriteString(c.nc, "\r\n")
	_, err := c.wait(tag)
	return err
}

// idle selects INBOX and enters IDLE (RFC 2177), returning once the server
// has said "+".
func (c *imapc) idle() error {
	if _, err := c.cmd("SELECT INBOX"); err != nil {
		return err
	}
	c.send("IDLE")
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.HasPrefix(line, "+") {
			return nil
		}
	}
}
