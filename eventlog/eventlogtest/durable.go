package eventlogtest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
)

// RunDurable checks that a durable implementation keeps everything across
// Close and reopen: records, epoch history, first offset and last epoch after
// Compact and Restore, the rollback area and meta values, and what Write
// wrote for a log that implements eventlog.BatchWriter.
//
// open opens (creating if needed) the log stored in dir; each subtest gets its
// own dir from t.TempDir() and calls open several times on it, closing the
// previous log first. open should not register a cleanup that fails on a log
// the suite already closed.
func RunDurable(t *testing.T, open func(t *testing.T, dir string) eventlog.Log) {
	tests := []struct {
		name string
		fn   func(t *testing.T, reopen func(eventlog.Log) eventlog.Log, l eventlog.Log)
	}{
		{"RecordsAndEpochs", durableRecordsAndEpochs},
		{"Compact", durableCompact},
		{"Restore", durableRestore},
		{"RollbackAndMeta", durableRollbackAndMeta},
		{"Empty", durableEmpty},
		{"Property", durableProperty},
		// Write (eventlog.BatchWriter), skipped for a log without it.
		{"WriteEpochChange", durableWriteEpochChange},
		{"Write", durableWrite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			reopen := func(l eventlog.Log) eventlog.Log {
				t.Helper()
				require.NoError(t, l.Close())
				return open(t, dir)
			}
			l := open(t, dir)
			tt.fn(t, reopen, l)
		})
	}
}

// snapshot is everything observable about a log.
type snapshot struct {
	First     eventlog.Offset
	Last      eventlog.Offset
	LastEpoch eventlog.Epoch
	Epochs    []eventlog.EpochStart
	Records   []eventlog.Record
	Rolled    []eventlog.Record
}

func snap(t *testing.T, l eventlog.Log) snapshot {
	t.Helper()
	return snapshot{
		First:     l.First(),
		Last:      l.Last(),
		LastEpoch: l.LastEpoch(),
		Epochs:    nonNil(l.Epochs()),
		Records:   nonNil(readAll(t, l, 1<<16)),
		Rolled:    nonNil(rolledAll(t, l)),
	}
}

func durableRecordsAndEpochs(t *testing.T, reopen func(eventlog.Log) eventlog.Log, l eventlog.Log) {
	require.NoError(t, l.AddEpoch(es(1, 1)))
	require.NoError(t, l.Append(records(1, 50, 1)))
	require.NoError(t, l.AddEpoch(es(2, 51))) // an epoch that wrote nothing
	require.NoError(t, l.AddEpoch(es(3, 51)))
	require.NoError(t, l.Append(records(51, 7, 3)))
	want := snap(t, l)
	require.Len(t, want.Records, 57)

	l = reopen(l)
	assert.Equal(t, want, snap(t, l))
	// The reopened log continues where it stopped.
	require.ErrorIs(t, l.Append(records(57, 1, 3)), eventlog.ErrNotContiguous)
	require.NoError(t, l.Append(records(58, 1, 3)))
	require.NoError(t, l.Truncate(55))
	want = snap(t, l)
	l = reopen(l)
	assert.Equal(t, want, snap(t, l))
	assert.Equal(t, []eventlog.EpochStart{es(1, 1), es(2, 51), es(3, 51)}, l.Epochs())
	require.NoError(t, l.Close())
}

func durableCompact(t *testing.T, reopen func(eventlog.Log) eventlog.Log, l eventlog.Log) {
	require.NoError(t, l.Append(records(1, 10, 1)))
	require.NoError(t, l.Append(records(11, 10, 2)))
	require.NoError(t, l.Compact(12))
	want := snap(t, l)
	l = reopen(l)
	assert.Equal(t, want, snap(t, l))
	assert.Equal(t, eventlog.Offset(13), l.First())
	_, err := l.Read(12, 1<<20)
	assert.ErrorIs(t, err, eventlog.ErrCompacted)

	// Everything compacted: First, Last and LastEpoch still survive.
	require.NoError(t, l.Compact(20))
	l = reopen(l)
	assert.Equal(t, eventlog.Offset(21), l.First())
	assert.Equal(t, eventlog.Offset(20), l.Last())
	assert.Equal(t, eventlog.Epoch(2), l.LastEpoch())
	require.NoError(t, l.Append(records(21, 1, 2)))
	require.NoError(t, l.Close())
}

func durableRestore(t *testing.T, reopen func(eventlog.Log) eventlog.Log, l eventlog.Log) {
	require.NoError(t, l.Append(records(1, 5, 1)))
	history := []eventlog.EpochStart{es(1, 1), es(4, 90), es(6, 1001)}
	require.NoError(t, l.Restore(1000, 4, history))
	l = reopen(l)
	assert.Equal(t, eventlog.Offset(1001), l.First())
	assert.Equal(t, eventlog.Offset(1000), l.Last())
	assert.Equal(t, eventlog.Epoch(4), l.LastEpoch())
	assert.Equal(t, history, l.Epochs())
	got, err := l.Read(1001, 1<<20)
	require.NoError(t, err)
	assert.Empty(t, got, "the records from before Restore are gone")

	recs := records(1001, 3, 6)
	require.NoError(t, l.Append(recs))
	l = reopen(l)
	assert.Equal(t, recs, readAll(t, l, 1<<20))
	require.NoError(t, l.Close())
}

func durableRollbackAndMeta(t *testing.T, reopen func(eventlog.Log) eventlog.Log, l eventlog.Log) {
	recs := records(1, 10, 1)
	require.NoError(t, l.Append(recs))
	require.NoError(t, l.Truncate(7))
	require.NoError(t, l.Truncate(5))
	require.NoError(t, l.SetMeta("hard", []byte("epoch=9")))
	require.NoError(t, l.SetMeta("empty", nil))

	l = reopen(l)
	assert.Equal(t, append(recs[7:10:10], recs[5:7]...), rolledAll(t, l))
	v, ok, err := l.Meta("hard")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, []byte("epoch=9"), v)
	_, ok, err = l.Meta("empty")
	require.NoError(t, err)
	assert.True(t, ok)

	require.NoError(t, l.DiscardRolledBack(3))
	l = reopen(l)
	assert.Equal(t, recs[5:7], rolledAll(t, l), "discarding is durable")
	// Truncations after a reopen keep coming after the older ones.
	require.NoError(t, l.Truncate(4))
	l = reopen(l)
	assert.Equal(t, []eventlog.Record{recs[5], recs[6], recs[4]}, rolledAll(t, l))
	require.NoError(t, l.DiscardRolledBack(3))
	l = reopen(l)
	assert.Empty(t, rolledAll(t, l))
	require.NoError(t, l.Close())
}

func durableEmpty(t *testing.T, reopen func(eventlog.Log) eventlog.Log, l eventlog.Log) {
	l = reopen(l)
	assert.Equal(t, snapshot{First: 1, Epochs: []eventlog.EpochStart{}, Records: []eventlog.Record{}, Rolled: []eventlog.Record{}}, snap(t, l))
	// Truncating everything and reopening gives an empty log again.
	require.NoError(t, l.Append(records(1, 3, 2)))
	require.NoError(t, l.Truncate(0))
	l = reopen(l)
	assert.Equal(t, eventlog.Offset(0), l.Last())
	assert.Equal(t, eventlog.Epoch(0), l.LastEpoch())
	require.NoError(t, l.Close())
}

func durableProperty(t *testing.T, reopen func(eventlog.Log) eventlog.Log, l eventlog.Log) {
	steps := 200
	if testing.Short() {
		steps = 60
	}
	l = runProperty(t, l, propertyConfig{seed: 2, steps: steps, reopen: reopen, reopenEvery: 10})
	require.NoError(t, l.Close())
}
