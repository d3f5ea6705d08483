package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The far upstream: a network namespace joined to this one by a veth pair
// with netem delaying each direction by 20 ms (40 ms round trip). Inside it a
// TCP forwarder listens on the namespace's address and passes connections to
// Dovecot on loopback, so Dovecot itself is 40 ms away from every client of
// that address. Only the two /30 veth addresses are used.
const (
	nsHostAddr = "10.231.77.1"
	nsAddr     = "10.231.77.2"
)

// farUpstream is the namespace, the forwarder in it, and a loopback
// forwarder to that one: mailgate checks the upstream's certificate against
// the address it dials, and the stack's certificate names loopback
// addresses only.
type farUpstream struct {
	ns, veth string
	ln, lo   net.Listener
}

// startFar creates the namespace and the forwarder to target. It fails when
// the process cannot administer the network (no CAP_NET_ADMIN).
func startFar(target string) (*farUpstream, error) {
	id := os.Getpid() % 100000
	f := &farUpstream{ns: fmt.Sprintf("mgbench%d", id), veth: fmt.Sprintf("mgb%d", id)}
	steps := [][]string{
		{"ip", "netns", "add", f.ns},
		{"ip", "link", "add", f.veth + "h", "type", "veth", "peer", "name", f.veth + "n"},
		{"ip", "link", "set", f.veth + "n", "netns", f.ns},
		{"ip", "addr", "add", nsHostAddr + "/30", "dev", f.veth + "h"},
		{"ip", "link", "set", f.veth + "h", "up"},
		{"tc", "qdisc", "add", "dev", f.veth + "h", "root", "netem", "delay", "20ms"},
		{"ip", "netns", "exec", f.ns, "ip", "addr", "add", nsAddr + "/30", "dev", f.veth + "n"},
		{"ip", "netns", "exec", f.ns, "ip", "link", "set", f.veth + "n", "up"},
		{"ip", "netns", "exec", f.ns, "ip", "link", "set", "lo", "up"},
		{"ip", "netns", "exec", f.ns, "tc", "qdisc", "add", "dev", f.veth + "n", "root", "netem", "delay", "20ms"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			f.stop()
			return nil, fmt.Errorf("%s: %w: %s", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	ln, err := listenInNS(f.ns, nsAddr+":0")
	if err != nil {
		f.stop()
		return nil, err
	}
	f.ln = ln
	go relayTCP(ln, target)
	if f.lo, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		f.stop()
		return nil, err
	}
	go relayTCP(f.lo, ln.Addr().String())
	return f, nil
}

// loopback is the far upstream's address on loopback.
func (f *farUpstream) loopback() string { return f.lo.Addr().String() }

func (f *farUpstream) stop() {
	for _, ln := range []net.Listener{f.ln, f.lo} {
		if ln != nil {
			ln.Close()
		}
	}
	exec.Command("ip", "link", "del", f.veth+"h").Run()
	exec.Command("ip", "netns", "del", f.ns).Run()
}

// listenInNS opens a listener inside the named namespace. A socket stays in
// the namespace it was created in, so only the listen call needs the
// namespace: it runs on a locked OS thread that joins it and is thrown
// away afterwards (a goroutine that exits locked takes its thread along).
func listenInNS(ns, addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		fd, err := syscall.Open("/var/run/netns/"+ns, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer syscall.Close(fd)
		if e := unix.Setns(fd, unix.CLONE_NEWNET); e != nil {
			ch <- result{nil, fmt.Errorf("setns: %w", e)}
			return
		}
		ln, err := net.Listen("tcp", addr)
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}
