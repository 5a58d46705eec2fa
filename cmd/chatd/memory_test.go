package main

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

// These tests change process-wide runtime settings: they must not run in
// parallel with each other.

func TestApplyMemorySettings(t *testing.T) {
	// Known starting point, put back afterwards whatever the test does.
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(1 << 40))

	restore := applyMemorySettings(memorySettings{limitMiB: 300, gcPercent: 250})
	assert.Equal(t, int64(300<<20), debug.SetMemoryLimit(-1), "limit applied")
	assert.Equal(t, 250, debug.SetGCPercent(250), "percent applied")

	restore()
	assert.Equal(t, int64(1<<40), debug.SetMemoryLimit(-1), "limit restored")
	assert.Equal(t, 100, debug.SetGCPercent(100), "percent restored")
}

func TestApplyMemorySettingsZeroKeepsRuntime(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(150))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(700 << 20))

	restore := applyMemorySettings(memorySettings{})
	assert.Equal(t, int64(700<<20), debug.SetMemoryLimit(-1), "limit untouched")
	assert.Equal(t, 150, debug.SetGCPercent(150), "percent untouched")
	restore()
	assert.Equal(t, int64(700<<20), debug.SetMemoryLimit(-1), "restore leaves limit alone")
	assert.Equal(t, 150, debug.SetGCPercent(150), "restore leaves percent alone")
}
