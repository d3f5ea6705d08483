//go:build !race

package main

// raceEnabled says this binary has the race detector (see race.go).
const raceEnabled = false
