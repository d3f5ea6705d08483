package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"mailgate/internal/devup"
)

// helperEnv marks a helper process, a re-execution of this binary that
// serves one thing on loopback until its stdin closes, so that neither its
// CPU nor its sockets mix with the measuring clients'. Its value is
// "tlsrelay TARGET CERTFILE KEYFILE CAFILE" (the plain Go TLS relay that
// mailgate's relay is measured against) or "devup CERTFILE KEYFILE" (the in-process upstream of the idle row).
const helperEnv = "MAILGATE_BENCH_HELPER"

// helper is a running helper process.
type helper struct {
	addr string
	pid  int
}

// cpu is the helper's user plus system CPU time so far.
func (h helper) cpu() (time.Duration, error) { return procCPU(h.pid) }

// startHelper starts a helper process and returns its address.
func startHelper(spec string) (addr string, stop func(), err error) {
	h, stop, err := startHelperProc(spec)
	return h.addr, stop, err
}

// startHelperProc starts a helper process and returns it.
func startHelperProc(spec string) (h helper, stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return helper{}, nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"="+spec)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return helper{}, nil, err
	}
	stop = func() { in.Close(); cmd.Wait() }
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return helper{}, nil, fmt.Errorf("helper %q: %w", spec, err)
	}
	return helper{addr: strings.TrimSpace(addr), pid: cmd.Process.Pid}, stop, nil
}

// runHelper is the helper process: it prints its address and serves
// until stdin closes.
func runHelper(spec string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	f := strings.Fields(spec)
	switch {
	case len(f) == 5 && f[0] == "tlsrelay":
		srv, cli, err := relayTLSConfigs(f[2], f[3], f[4])
		if err != nil {
			return err
		}
		go relayTLS(tls.NewListener(ln, srv), f[1], cli)
	case len(f) == 3 && f[0] == "devup":
		srv, err := newDevup(f[1], f[2])
		if err != nil {
			return err
		}
		defer srv.Close()
		go srv.Serve(ln)
	default:
		return fmt.Errorf("unknown helper %q", spec)
	}
	fmt.Println(ln.Addr().String())
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// newDevup is the go-imap upstream (internal/devup) with TLS. It accepts
// any token; mailgate still gets real ones from the identity provider.
func newDevup(certFile, keyFile string) (*devup.IMAPServer, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return devup.NewIMAP(&devup.IMAPOptions{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Logger:    slog.New(slog.DiscardHandler),
	}), nil
}

// relayTCP copies each connection to target, as socat would: no protocol
// and no TLS of its own (the delay line of the far row).
func relayTCP(ln net.Listener, target string) {
	relayAll(ln, func() (net.Conn, error) { return net.Dial("tcp", target) })
}

// relayAll copies each connection ln accepts to one from dial, both ways,
// with half-closes passed on (*net.TCPConn and *tls.Conn both have
// CloseWrite).
func relayAll(ln net.Listener, dial func() (net.Conn, error)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := dial()
			if err != nil {
				return
			}
			defer u.Close()
			go func() { io.Copy(u, c); u.(interface{ CloseWrite() error }).CloseWrite() }()
			io.Copy(c, u)
		}()
	}
}

// relayTLSConfigs are the plain TLS relay's server side (the stack's
// certificate, as mailgate's) and client side (trusting the stack's CA).
func relayTLSConfigs(certFile, keyFile, caFile string) (srv, cli *tls.Config, err error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, err
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, nil, fmt.Errorf("no certificate in %s", caFile)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}},
		&tls.Config{RootCAs: pool, ServerName: "localhost"}, nil
}

// relayTLS terminates TLS on both legs and copies with io.Copy, nothing
// else: the least any TLS-terminating relay in Go does, and what issue 18
// measures mailgate's relay against. Its CPU is read from this process.
func relayTLS(ln net.Listener, target string, cfg *tls.Config) {
	relayAll(ln, func() (net.Conn, error) { return tls.Dial("tcp", target, cfg) })
}
