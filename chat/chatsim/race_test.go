//go:build race

package chatsim

// raceEnabled shortens the default run under the race detector, which
// slows the single-goroutine simulator about eightfold without finding
// anything more in it.
const raceEnabled = true
