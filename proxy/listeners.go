package proxy

import (
	"errors"
	"net"
	"sync"
)

// Listeners is the set of listeners one front end serves, so that Close
// stops them all and their Serve calls can tell a Close from a failure. The
// zero value is ready to use.
type Listeners struct {
	mu     sync.Mutex
	set    map[net.Listener]struct{}
	closed bool
}

// Add registers ln. It returns false after Close: the caller closes ln and
// returns from Serve.
func (l *Listeners) Add(ln net.Listener) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if l.set == nil {
		l.set = make(map[net.Listener]struct{})
	}
	l.set[ln] = struct{}{}
	return true
}

// Remove forgets ln when its Serve returns.
func (l *Listeners) Remove(ln net.Listener) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.set, ln)
}

// Closed reports whether Close was called, so an Accept error after it is
// a normal end.
func (l *Listeners) Closed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Close closes every listener, outside the lock, and refuses new ones.
func (l *Listeners) Close() error {
	l.mu.Lock()
	l.closed = true
	lns := make([]net.Listener, 0, len(l.set))
	for ln := range l.set {
		lns = append(lns, ln)
	}
	l.mu.Unlock()
	var err error
	for _, ln := range lns {
		if cerr := ln.Close(); !errors.Is(cerr, net.ErrClosed) {
			err = errors.Join(err, cerr)
		}
	}
	return err
}
