package main

import (
	"errors"
	"fmt"
	"net"

	"mailgate/config"
	"mailgate/proxy"
)

// front is one listener and the front end serving it. Each listener has a
// front end of its own, so each has its own TLS policy and can be replaced
// alone at a reload.
type front struct {
	srv     server
	bound   boundListener
	address string           // as configured: a new front end on it takes over sock
	sock    *net.TCPListener // the bound socket, under any PROXY protocol listener
}

// apply makes the running front ends those of specs: front ends no longer
// wanted stop accepting (their sessions continue until they end or the
// daemon stops), new ones open their listener. A new front end on the
// address of a retiring one takes over its socket (listen), so the port
// never closes; other retiring ones close first, so that an address
// written another way can bind again.
func (d *daemon) apply(cfg *config.Config, specs []frontSpec) error {
	if d.fronts == nil {
		d.fronts = map[string]*front{}
	}
	want, inherit := map[string]bool{}, map[string]bool{}
	for _, s := range specs {
		want[s.key] = true
		if _, running := d.fronts[s.key]; !running {
			inherit[s.l.Address] = true
		}
	}
	retiring := map[string]*front{} // by address, for the front ends that take them over
	for key, f := range d.fronts {
		if want[key] {
			continue
		}
		delete(d.fronts, key)
		if inherit[f.address] && retiring[f.address] == nil {
			retiring[f.address] = f
		} else {
			d.retire(f)
		}
	}
	var errs []error
	started := make([]*front, len(specs))
	d.bound = d.bound[:0] // in spec order: the portal's build reads those before it
	for i, s := range specs {
		f, running := d.fronts[s.key]
		if !running {
			var sock *net.TCPListener
			if old := retiring[s.l.Address]; old != nil {
				sock = old.sock
			}
			var err error
			if f, err = d.open(s, sock); err != nil {
				errs = append(errs, err)
				continue
			}
			started[i] = f
		}
		d.bound = append(d.bound, f.bound)
	}
	for _, f := range retiring {
		d.retire(f)
	}
	for i, s := range specs {
		if f := started[i]; f != nil {
			d.fronts[s.key] = f
			d.serve(cfg, s, f)
		}
	}
	return errors.Join(errs...)
}

// retire stops f accepting; its sessions go on until they end or the
// daemon stops.
func (d *daemon) retire(f *front) {
	f.srv.Close()
	d.retired = append(d.retired, f.srv)
	d.log.Info("listener closed; its sessions continue", "proto", f.bound.proto, "address", f.bound.addr.String())
}

// open builds s's front end and binds its listener, taking over inherit
// (the socket of the front end it replaces) when there is one.
func (d *daemon) open(s frontSpec, inherit *net.TCPListener) (*front, error) {
	if s.srv == nil {
		srv, err := s.build()
		if err != nil {
			return nil, fmt.Errorf("%s listener: %w", s.proto, err)
		}
		s.srv = srv
	}
	sock, err := listen(s.l.Address, inherit)
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", s.proto, err)
	}
	return &front{srv: s.srv, address: s.l.Address, sock: sock,
		bound: boundListener{proto: s.proto, mode: s.mode, addr: sock.Addr()}}, nil
}

// serve runs f's front end on its socket.
func (d *daemon) serve(cfg *config.Config, s frontSpec, f *front) {
	var ln net.Listener = f.sock
	if s.l.ProxyProtocol {
		ln = proxy.NewProxyProtoListener(ln, cfg.ProxyProtocol.Trusted, d.log.With("proto", s.proto))
	}
	d.log.Info("listening", "proto", s.proto, "address", ln.Addr().String(), "tls", string(s.mode),
		"proxy_protocol", s.l.ProxyProtocol)
	go func() {
		if err := f.srv.Serve(ln, s.mode); err != nil {
			d.log.Error("listener failed", "proto", s.proto, "address", s.l.Address, "err", err)
		}
	}()
}

// listen binds address, or, when inherit is the socket a retiring front
// end holds on that address, takes that socket over: a reload that changes
// a listener's settings but not its address (a limit, the TLS policy, the
// hostname) then never closes the port. Closing and binding again would
// leave a moment in which clients get "connection refused", and none at
// all if something else took the port meanwhile.
func listen(address string, inherit *net.TCPListener) (*net.TCPListener, error) {
	if inherit != nil {
		if ln, err := takeOver(inherit); err == nil {
			return ln, nil
		}
		// Rare (out of file descriptors): bind afresh once the old one
		// has let go of the port.
		inherit.Close()
	}
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

// takeOver returns a second listener on old's socket (a dup of its file
// descriptor). Once old is closed, the socket and its queue of connections
// not yet accepted stay open and are served by the new listener alone.
func takeOver(old *net.TCPListener) (*net.TCPListener, error) {
	f, err := old.File()
	if err != nil {
		return nil, fmt.Errorf("take over listener %s: %w", old.Addr(), err)
	}
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("take over listener %s: %w", old.Addr(), err)
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		ln.Close()
		return nil, fmt.Errorf("take over listener %s: not a TCP listener", old.Addr())
	}
	return tl, nil
}
