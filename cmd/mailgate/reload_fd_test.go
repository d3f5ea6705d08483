package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"testing"
)

// TestReloadNoFDLeak: a reload that hands every listener's socket to a new
// front end (a dup of its fd) closes the old descriptor and the one dup
// makes in passing, so many reloads leave as many descriptors open as one.
// The garbage collector is off meanwhile: an *os.File's finalizer would
// otherwise close a forgotten descriptor and hide the leak.
func TestReloadNoFDLeak(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	ports := freePorts(t, 2)
	config := func(i int) string {
		return strings.Replace(daemonConfig(ports[0], ports[1]), "hostname: mail.test", fmt.Sprintf("hostname: mail%d.test", i), 1)
	}
	d := startDaemonIn(t, config(0), ports[0])
	d.reload(config(1))
	d.reloaded(0)
	before := openFDs(t, os.Getpid())
	const reloads = 50
	for i := 2; i < 2+reloads; i++ {
		d.reload(config(i))
		d.reloaded(i - 1)
	}
	// A retired front end whose Serve had not yet started closes its
	// listener when it does: wait for that, not for a leak to heal.
	eventually(t, "descriptors back to their count", func() bool { return openFDs(t, os.Getpid()) <= before })
	if !answers(ports[0]) || !answers(ports[1]) {
		t.Fatalf("listeners gone after %d reloads:\n%s", reloads, d.logs)
	}
}
