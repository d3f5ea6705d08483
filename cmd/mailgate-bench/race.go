//go:build race

package main

// raceEnabled says this binary has the race detector, so the mailgate it
// builds gets it too (the smoke test under "go test -race" in CI).
const raceEnabled = true
