package main

import (
	"runtime/debug"
)

// Why chatd bounds the Go runtime's memory: under chatbench load the live
// heap is 55-150 MiB (Badger's two active memtable arenas of 21 MiB each, an
// immutable one being flushed, the flush's table builder of up to 48 MiB),
// and with GOGC=100 the heap grows to twice that between collections, so the
// peak RSS follows the largest live heap seen, not the steady state. A soft
// limit caps the garbage instead: near it the runtime collects as often as it
// must (each collection costs ~2-3 ms of CPU at this heap size; gctrace put
// the GC under 1% of CPU, so collecting more often is cheap). Raising the GC
// percentage was measured too: it saved no measurable CPU and doubled the
// heap again (467 vs 261 MiB peak, one replica). The limit is soft: a live
// heap above it (e.g. many concurrent argon2id hashes of 19 MiB each during
// a login storm) still runs, with the GC working hard (the runtime caps it at
// about half the CPU), rather than failing.

// memorySettings are the Go runtime's GC settings chatd applies (see
// applyMemorySettings). Zero fields leave the runtime's own setting, which
// GOMEMLIMIT and GOGC control.
type memorySettings struct {
	limitMiB  int64
	gcPercent int
}

// applyMemorySettings applies s to the Go runtime and returns the function
// that restores the previous settings. The settings are process-wide; the
// restore matters only when run is driven in-process (tests).
func applyMemorySettings(s memorySettings) (restore func()) {
	prevLimit, prevPercent := int64(-1), 0
	restorePercent := false
	if s.limitMiB > 0 {
		prevLimit = debug.SetMemoryLimit(s.limitMiB << 20)
	}
	if s.gcPercent != 0 {
		prevPercent = debug.SetGCPercent(s.gcPercent)
		restorePercent = true
	}
	return func() {
		if restorePercent {
			debug.SetGCPercent(prevPercent)
		}
		if prevLimit >= 0 {
			debug.SetMemoryLimit(prevLimit)
		}
	}
}
