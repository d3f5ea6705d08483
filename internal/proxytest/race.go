//go:build race

package proxytest

// RaceEnabled says the race detector is on. It allows at most 8128 live
// goroutines, so tests that hold thousands of connections hold fewer, and
// binaries built by tests are built with -race too.
const RaceEnabled = true
