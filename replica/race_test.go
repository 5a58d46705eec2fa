//go:build race

package replica_test

// raceEnabled shortens the default simulation under the race detector,
// which slows the single-goroutine simulator about sixfold without finding
// anything more in it.
const raceEnabled = true
