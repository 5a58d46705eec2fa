package eventlog_test

// BadgerOptions.ObserveSync: one observation per synced transaction of an
// Append that succeeded, and none for the other writes or a refused Append.

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
)

// syncRecorder collects ObserveSync calls.
type syncRecorder struct {
	mu    sync.Mutex
	calls []time.Duration
}

func (r *syncRecorder) observe(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, d)
}

func (r *syncRecorder) take() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

func TestBadgerLog_ObserveSync(t *testing.T) {
	rec := &syncRecorder{}
	l := openBadger(t, t.TempDir(), eventlog.BadgerOptions{MemTableSize: 1 << 20, ObserveSync: rec.observe})
	require.Empty(t, rec.take(), "opening a log appends nothing")

	require.NoError(t, l.Append(testRecords(1, 3, 1, 10)))
	got := rec.take()
	require.Len(t, got, 1, "a small append is one synced transaction")
	assert.Positive(t, got[0])

	// About 700 KB over a 1 MiB memtable (transactions of at most 15% of
	// it): several transactions, each observed.
	require.NoError(t, l.Append(testRecords(4, 3000, 1, 200)))
	got = rec.take()
	assert.Greater(t, len(got), 1, "each transaction of a large append is observed")
	for _, d := range got {
		assert.Positive(t, d)
	}

	err := l.Append(testRecords(10, 1, 1, 10))
	require.ErrorIs(t, err, eventlog.ErrNotContiguous)
	assert.Empty(t, rec.take(), "a refused append syncs nothing")

	require.NoError(t, l.Truncate(100))
	require.NoError(t, l.Compact(50))
	assert.Empty(t, rec.take(), "only appends are observed")

	require.NoError(t, l.Close())
	err = l.Append(testRecords(101, 1, 1, 10))
	require.ErrorIs(t, err, eventlog.ErrClosed)
	assert.Empty(t, rec.take())
}
