package shell

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// slowWriter takes d per write: the work a paced snapshot is made of.
type slowWriter struct{ d time.Duration }

func (w slowWriter) Write(b []byte) (int, error) {
	time.Sleep(w.d)
	return len(b), nil
}

// At a share of a half, every paceEvery bytes are followed by a rest at
// least as long as the time they took (a lower bound: it holds however
// loaded the machine is).
func TestPace_RestsInProportion(t *testing.T) {
	w := Pace(t.Context(), slowWriter{20 * time.Millisecond}, 0.5)
	buf := make([]byte, paceEvery)
	start := time.Now()
	for range 4 {
		_, err := w.Write(buf)
		require.NoError(t, err)
	}
	assert.GreaterOrEqual(t, time.Since(start), 4*2*20*time.Millisecond)
}

func TestPace_UnpacedAndCancelled(t *testing.T) {
	assert.Equal(t, io.Discard, Pace(t.Context(), io.Discard, 1), "share 1: the writer itself")
	ctx, cancel := context.WithCancel(t.Context())
	w := Pace(ctx, slowWriter{50 * time.Millisecond}, 0.01) // a rest of about 5 s
	go func() {
		time.Sleep(100 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	_, err := w.Write(make([]byte, paceEvery))
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 4*time.Second, "the rest ends when the context is done")
	_, err = w.Write([]byte("x"))
	assert.ErrorIs(t, err, context.Canceled)
}
