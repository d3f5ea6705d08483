package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"

	"mailgate/proxy"
	"mailgate/proxy/backend"
	"mailgate/proxy/imap"
	"mailgate/proxy/oauth"
	"mailgate/proxy/smtp"
	"mailgate/store"
)

// childConfig is what the parent hands a mailgate child on its stdin. The
// child wires the packages the way cmd/mailgate does (store, oauth.Manager,
// imap and smtp front ends, TLS on both legs), so mailgate's memory and CPU
// can be read from /proc without the benchmark's clients mixed in.
type childConfig struct {
	StoreDir      string
	TokenURL      string
	CertFile      string // listener certificate and key
	KeyFile       string
	CAFile        string // upstream roots
	ServerName    string // upstream certificate name
	IMAPUpstream  string // implicit TLS
	SMTPUpstream  string // implicit TLS; "" for none
	RelayTo       string // plain TCP relay target; "" for none
	WarmUpstreams int
	NoTLSResume   bool // no TLS session cache towards the upstream
}

// childAddrs is the child's answer: where it listens.
type childAddrs struct {
	IMAP, SMTP, Relay string
}

// childStats is the child's answer to "stats".
type childStats struct {
	Goroutines int
	HeapInuse  uint64
	StackInuse uint64
}

// runChild serves mailgate until stdin closes, answering the parent's
// commands: "stats", "cpuprofile PATH", "stopprofile".
func runChild() error {
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("child: read config: %w", err)
	}
	var cfg childConfig
	if err := json.Unmarshal(line, &cfg); err != nil {
		return fmt.Errorf("child: config: %w", err)
	}
	addrs, err := serveMailgate(&cfg)
	if err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	out.Encode(addrs)
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return nil // the parent is done with us
		}
		if err := childCommand(strings.Fields(line), out); err != nil {
			return err
		}
	}
}

func childCommand(f []string, out *json.Encoder) error {
	if len(f) == 0 {
		return nil
	}
	switch f[0] {
	case "stats":
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return out.Encode(childStats{Goroutines: runtime.NumGoroutine(), HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse})
	case "cpuprofile":
		fh, err := os.Create(f[1])
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(fh); err != nil {
			return err
		}
		return out.Encode("ok")
	case "heapprofile":
		fh, err := os.Create(f[1])
		if err != nil {
			return err
		}
		defer fh.Close()
		runtime.GC()
		if err := pprof.Lookup("heap").WriteTo(fh, 0); err != nil {
			return err
		}
		return out.Encode("ok")
	case "stopprofile":
		pprof.StopCPUProfile()
		return out.Encode("ok")
	}
	return fmt.Errorf("child: unknown command %q", f[0])
}

// serveMailgate starts the front ends and the plain relay.
func serveMailgate(cfg *childConfig) (*childAddrs, error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := store.Open(&store.Options{Path: filepath.Join(cfg.StoreDir, "mailgate.db"),
		KeyFile: filepath.Join(cfg.StoreDir, "key"), Logger: log})
	if err != nil {
		return nil, err
	}
	m, err := oauth.New(oauthOptions(cfg.TokenURL, st))
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	roots, err := loadRoots(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	upTLS := &tls.Config{RootCAs: roots, ServerName: cfg.ServerName, MinVersion: tls.VersionTLS12}
	if !cfg.NoTLSResume {
		upTLS.ClientSessionCache = tls.NewLRUClientSessionCache(0) // as cmd/mailgate does
	}
	up := func(addr string) proxy.Upstream {
		return proxy.Upstream{Address: addr, TLS: proxy.TLSImplicit, Mechanism: "XOAUTH2", TLSConfig: upTLS}
	}
	auth, tokens := backend.NewAuthenticator(st, nil), backend.NewTokens(m)
	var tr proxy.Tracker
	addrs := &childAddrs{}
	is := imap.New(&imap.Options{Authenticator: auth, Tokens: tokens, Upstream: up(cfg.IMAPUpstream),
		TLSConfig: srvTLS, Tracker: &tr, Logger: log, WarmUpstreams: cfg.WarmUpstreams})
	if addrs.IMAP, err = serveOn(func(ln net.Listener) error { return is.Serve(ln, proxy.TLSImplicit) }); err != nil {
		return nil, err
	}
	if cfg.SMTPUpstream != "" {
		ss := smtp.New(&smtp.Options{Authenticator: auth, Tokens: tokens, Upstream: up(cfg.SMTPUpstream),
			TLSConfig: srvTLS, Tracker: &tr, Logger: log})
		if addrs.SMTP, err = serveOn(func(ln net.Listener) error { return ss.Serve(ln, proxy.TLSImplicit) }); err != nil {
			return nil, err
		}
	}
	if cfg.RelayTo != "" {
		if addrs.Relay, err = serveOn(func(ln net.Listener) error { return plainRelay(ln, cfg.RelayTo) }); err != nil {
			return nil, err
		}
	}
	return addrs, nil
}

func oauthOptions(tokenURL string, st oauth.TokenStore) *oauth.Options {
	return &oauth.Options{Provider: oauth.Microsoft, Tenant: "bench", ClientID: benchClientID,
		TokenURL: tokenURL, Store: st}
}

func loadRoots(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	return roots, nil
}

func serveOn(serve func(net.Listener) error) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go serve(ln)
	return ln.Addr().String(), nil
}

// plainRelay is the floor: a TCP copier with no protocol and no TLS of its
// own (the client's TLS goes through to the upstream), as socat would be.
func plainRelay(ln net.Listener, target string) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
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
