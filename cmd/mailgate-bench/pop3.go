package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"mailgate/proxy"
)

// pop3MsgSize is the size of the messages the POP3 row RETRs: attachment
// sized, as what POP3 clients (ticket systems, scan-to-mail mailboxes)
// mostly fetch.
const pop3MsgSize = 5 << 20

// pop3Sizes splits total into messages of pop3MsgSize, or into two
// smaller ones when total is less than two of those (the -quick run), so
// that every run RETRs more than one message.
func pop3Sizes(total int) []int {
	size := pop3MsgSize
	if total < 2*size {
		size = max(total/2, 64<<10)
	}
	var out []int
	for sum := 0; sum < total; sum += size {
		out = append(out, min(size, total-sum))
	}
	return out
}

// rowPOP3 measures RETR throughput over POP3S: straight to Dovecot's pop3
// with XOAUTH2, through mailgate's POP3S listener with the app password,
// and through the plain Go TLS relay, interleaved pass by pass. The messages
// are delivered over LMTP into benchUser's INBOX after the FETCH row has
// run, and each session RETRs the last of them, so the FETCH mailbox is
// unchanged for that row.
func rowPOP3(e *env, d *daemon, rep *report) error {
	sizes := pop3Sizes(e.cfg.pop3MB << 20)
	t0 := time.Now()
	if err := deliverLMTP(e.stack.LMTP, benchUser, sizes); err != nil {
		return fmt.Errorf("pop3 delivery: %w", err)
	}
	logf("pop3: delivered %d messages, %d MiB, in %v; RETR of them, %d passes", len(sizes), e.cfg.pop3MB,
		time.Since(t0).Round(time.Millisecond), e.cfg.passes)
	relay, stop, err := e.tlsRelay(e.stack.POP3S())
	if err != nil {
		return err
	}
	defer stop()
	paths := []path{
		{"direct", e.stack.POP3S(), e.direct, nil},
		{"mailgate", d.pop3, d.login, d.cpu},
		{"relay", relay.addr, e.direct, relay.cpu},
	}
	rates, bytesOf := map[string][]float64{}, map[string]int64{}
	for range e.cfg.passes {
		for _, p := range paths {
			n, dt, err := retrLast(p.addr, e.clientTL, p.l(), len(sizes))
			if err != nil {
				return fmt.Errorf("pop3 %s: %w", p.name, err)
			}
			if m, ok := bytesOf["direct"]; ok && m != n {
				return fmt.Errorf("pop3 %s: RETR read %d bytes, direct %d", p.name, n, m)
			}
			bytesOf[p.name] = n
			rates[p.name] = append(rates[p.name], mibps(n, dt))
		}
	}
	rep.add(row{Name: fmt.Sprintf("POP3 RETR %d x %s", len(sizes), mibString(sizes[0])), Unit: "MiB/s",
		Direct: median(rates["direct"]), Mailgate: median(rates["mailgate"]), Relay: median(rates["relay"]),
		HigherBetter: true, Note: "POP3S both legs; XOAUTH2 direct, USER/PASS through mailgate"})
	return nil
}

func mibString(n int) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
}

// deliverLMTP delivers messages of the given sizes to rcpt.
func deliverLMTP(addr, rcpt string, sizes []int) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	c := gosmtp.NewClientLMTP(nc)
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return err
	}
	for i, size := range sizes {
		if err := c.SendMail("fill@localhost", []string{rcpt}, bytes.NewReader(message(1000+i, size))); err != nil {
			return err
		}
	}
	return c.Quit()
}

// retrLast logs in over POP3S and RETRs the last k messages of the
// mailbox; it returns the bytes of the multi-line responses and the time
// from the first RETR to the last byte. Login and QUIT are not timed.
func retrLast(addr string, cfg *tls.Config, l login, k int) (int64, time.Duration, error) {
	c, err := loginPOP3(addr, cfg, l)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	st, err := c.cmd("STAT")
	if err != nil {
		return 0, 0, err
	}
	var count, size int
	if _, err := fmt.Sscanf(st, "+OK %d %d", &count, &size); err != nil || count < k {
		return 0, 0, fmt.Errorf("STAT %q: want at least %d messages", strings.TrimSpace(st), k)
	}
	var total int64
	t0 := time.Now()
	for i := count - k + 1; i <= count; i++ {
		n, err := c.retr(i)
		if err != nil {
			return 0, 0, fmt.Errorf("RETR %d: %w", i, err)
		}
		total += n
	}
	dt := time.Since(t0)
	_, err = c.cmd("QUIT")
	return total, dt, err
}

// pop3c is a minimal POP3 client (RFC 1939) that, like imapc, counts bytes
// and parses no more than it must.
type pop3c struct {
	nc  net.Conn
	br  *bufio.Reader
	buf []byte
}

// loginPOP3 connects with implicit TLS, reads the greeting and logs in:
// AUTH XOAUTH2 with the response after the "+ " continuation (Exchange
// Online's form) when l has a token, else USER and PASS. The deadline
// stays, generous, for the whole session.
func loginPOP3(addr string, cfg *tls.Config, l login) (*pop3c, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(nc, cfg)
	nc.SetDeadline(time.Now().Add(5 * time.Minute))
	c := &pop3c{nc: tc, br: bufio.NewReaderSize(tc, 64<<10), buf: make([]byte, 64<<10)}
	if err := c.login(l); err != nil {
		nc.Close()
		return nil, fmt.Errorf("pop3 login: %w", err)
	}
	return c, nil
}

func (c *pop3c) login(l login) error {
	if _, err := c.reply(); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if l.token != "" {
		if _, err := c.cmdPrefix("AUTH XOAUTH2", "+"); err != nil {
			return err
		}
		_, ir, _ := proxy.NewXOAUTH2Client(l.user, l.token).Start()
		_, err := c.cmd(base64.StdEncoding.EncodeToString(ir))
		return err
	}
	if _, err := c.cmd("USER " + l.user); err != nil {
		return err
	}
	_, err := c.cmd("PASS " + l.pass)
	return err
}

func (c *pop3c) Close() error { return c.nc.Close() }

// cmd sends a line and reads a "+OK" reply line.
func (c *pop3c) cmd(line string) (string, error) { return c.cmdPrefix(line, "+OK") }

func (c *pop3c) cmdPrefix(line, want string) (string, error) {
	if _, err := io.WriteString(c.nc, line+"\r\n"); err != nil {
		return "", err
	}
	r, err := c.br.ReadString('\n')
	if err != nil {
		return r, err
	}
	if !strings.HasPrefix(r, want) {
		return r, fmt.Errorf("%s: %q", strings.Fields(line + " x")[0], strings.TrimSpace(r))
	}
	return r, nil
}

// reply reads one "+OK" line (the greeting).
func (c *pop3c) reply() (string, error) {
	r, err := c.br.ReadString('\n')
	if err == nil && !strings.HasPrefix(r, "+OK") {
		err = fmt.Errorf("%q", strings.TrimSpace(r))
	}
	return r, err
}

// retr sends RETR n and reads the multi-line response to its terminating
// ".": it counts bytes and undoes no dot-stuffing. The server sends
// nothing after the terminator until the next command, and dot-stuffing
// keeps CRLF "." CRLF out of the body, so the response ends where what
// was read so far ends with it.
func (c *pop3c) retr(n int) (int64, error) {
	st, err := c.cmd(fmt.Sprintf("RETR %d", n))
	if err != nil {
		return 0, err
	}
	total := int64(len(st))
	var tail [5]byte // the last 5 bytes read, status line included
	copy(tail[:], st[max(len(st)-5, 0):])
	for {
		k, err := c.br.Read(c.buf)
		total += int64(k)
		if k >= 5 {
			copy(tail[:], c.buf[k-5:k])
		} else {
			copy(tail[:], tail[k:])
			copy(tail[5-k:], c.buf[:k])
		}
		if string(tail[:]) == "\r\n.\r\n" {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
