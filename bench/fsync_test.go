package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProbeFsync(t *testing.T) {
	dir := t.TempDir()
	res, err := ProbeFsync(t.Context(), dir, 20, 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 20, res.Samples)
	assert.Positive(t, res.P50)
	assert.LessOrEqual(t, res.P50, res.P99)
	assert.LessOrEqual(t, res.P99, res.Max)
	assert.InDelta(t, float64(time.Second)/float64(res.P50), res.PerSec(), 1e-6)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "the probe file is removed")
}

func TestProbeFsync_Errors(t *testing.T) {
	_, err := ProbeFsync(t.Context(), filepath.Join(t.TempDir(), "missing"), 5, time.Second)
	assert.ErrorContains(t, err, "create fsync probe file")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = ProbeFsync(ctx, t.TempDir(), 5, time.Second)
	assert.ErrorIs(t, err, context.Canceled)

	assert.Zero(t, FsyncResult{}.PerSec(), "no samples: no rate")
}
