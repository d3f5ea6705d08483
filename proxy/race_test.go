//go:build race

package proxy

// raceEnabled says the race detector is on, as internal/proxytest's
// RaceEnabled does; this package's own tests cannot import proxytest,
// which imports proxy.
const raceEnabled = true
