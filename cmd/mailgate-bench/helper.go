package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"

	"mailgate/internal/devup"
)

// helperEnv marks a helper process, a re-execution of this binary that
// serves one thing on loopback until its stdin closes, so that neither its
// CPU nor its sockets mix with the measuring clients'. Its value is
// "relay TARGET" (the plain TCP relay, the throughput floor) or
// "devup CERTFILE KEYFILE" (the in-process upstream of the idle row).
const helperEnv = "MAILGATE_BENCH_HELPER"

// startHelper starts a helper process and returns its address.
func startHelper(spec string) (addr string, stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"="+spec)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() { in.Close(); cmd.Wait() }
	addr, err = bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("helper %q: %w", spec, err)
	}
	return strings.TrimSpace(addr), stop, nil
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
	case len(f) == 2 && f[0] == "relay":
		go relayTCP(ln, f[1])
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
// and no TLS of its own. As the plain relay it is the throughput floor (the
// client's TLS goes through to the upstream).
func relayTCP(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer u.Close()
			go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
			io.Copy(c, u)
		}()
	}
}
