//go:build race

package smtp

// raceEnabled: the race detector allows at most 8128 live goroutines, so
// tests that hold thousands of connections hold fewer under -race.
const raceEnabled = true
