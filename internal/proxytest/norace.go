//go:build !race

package proxytest

// RaceEnabled says the race detector is on (see race.go).
const RaceEnabled = false
