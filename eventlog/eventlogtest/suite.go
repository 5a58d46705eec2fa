package eventlogtest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
)

// Run checks the eventlog.Log contract. open must return a fresh, empty log
// for each call; it should register its own cleanup (the suite closes some
// logs itself, so Close must tolerate a second call).
func Run(t *testing.T, open func(t *testing.T) eventlog.Log) {
	tests := []struct {
		name string
		fn   func(t *testing.T, l eventlog.Log)
	}{
		{"Empty", testEmpty},
		{"AppendRead", testAppendRead},
		{"AppendNotContiguous", testAppendNotContiguous},
		{"AppendDoesNotRetain", testAppendDoesNotRetain},
		{"ReadBatching", testReadBatching},
		{"ReadPastEnd", testReadPastEnd},
		{"Compact", testCompact},
		{"Truncate", testTruncate},
		{"TruncateCompacted", testTruncateCompacted},
		{"RollbackArea", testRollbackArea},
		{"Epochs", testEpochs},
		{"Restore", testRestore},
		{"Meta", testMeta},
		{"WaitWakesOnAppend", testWaitWakesOnAppend},
		{"WaitCancel", testWaitCancel},
		{"WaitClose", testWaitClose},
		{"Closed", testClosed},
		{"ConcurrentReaders", testConcurrentReaders},
		{"Property", testProperty},
		// Write (eventlog.BatchWriter), skipped for a log without it.
		{"WriteInvalid", testWriteInvalid},
		{"WriteClosed", testWriteClosed},
		{"WriteDoesNotRetain", testWriteDoesNotRetain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
	// Tests that compare Write with the same steps done one by one on a
	// second log.
	pairs := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) eventlog.Log)
	}{
		{"WriteSubsets", testWriteSubsets},
		{"WriteProperty", testWriteProperty},
	}
	for _, tt := range pairs {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

func testEmpty(t *testing.T, l eventlog.Log) {
	assert.Equal(t, eventlog.Offset(1), l.First())
	assert.Equal(t, eventlog.Offset(0), l.Last())
	assert.Equal(t, eventlog.Epoch(0), l.LastEpoch())
	assert.Empty(t, l.Epochs())
	got, err := l.Read(1, 1<<20)
	require.NoError(t, err)
	assert.NotNil(t, got, "an empty read is an empty slice, not nil")
	assert.Empty(t, got)
	_, err = l.Read(0, 1<<20)
	assert.ErrorIs(t, err, eventlog.ErrCompacted, "offset 0 is before First")
	assert.Empty(t, rolledAll(t, l))
	_, ok, err := l.Meta("absent")
	require.NoError(t, err)
	assert.False(t, ok)
}

func testAppendRead(t *testing.T, l eventlog.Log) {
	var want []eventlog.Record
	for i, n := range []int{1, 5, 64} {
		recs := records(l.Last()+1, n, eventlog.Epoch(i+1))
		require.NoError(t, l.Append(recs))
		want = append(want, recs...)
		assert.Equal(t, eventlog.Offset(len(want)), l.Last())
		assert.Equal(t, eventlog.Epoch(i+1), l.LastEpoch())
	}
	// Records with nil and empty payloads and no client survive as written.
	odd := []eventlog.Record{
		{Offset: l.Last() + 1, Epoch: 3, Type: "nil"},
		{Offset: l.Last() + 2, Epoch: 3, Type: "empty", Data: []byte{}},
	}
	require.NoError(t, l.Append(odd))
	want = append(want, odd...)
	assert.Equal(t, eventlog.Offset(1), l.First())
	assert.Equal(t, want, readAll(t, l, 1<<20))
	assert.Equal(t, want, readAll(t, l, 1), "one record per batch")
}

func testAppendNotContiguous(t *testing.T, l eventlog.Log) {
	require.NoError(t, l.Append(records(1, 3, 2)))
	before := readAll(t, l, 1<<20)
	tests := []struct {
		name string
		recs []eventlog.Record
	}{
		{"none", nil},
		{"gap", records(5, 2, 2)},
		{"overlap", records(3, 2, 2)},
		{"offset zero", records(0, 2, 2)},
		{"gap inside", append(records(4, 1, 2), records(6, 1, 2)...)},
		{"duplicate inside", append(records(4, 1, 2), records(4, 1, 2)...)},
		{"epoch below last", records(4, 2, 1)},
		{"epoch decreasing inside", append(records(4, 1, 3), records(5, 1, 2)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, l.Append(tt.recs), eventlog.ErrNotContiguous)
			assert.Equal(t, eventlog.Offset(3), l.Last(), "nothing written")
			assert.Equal(t, eventlog.Epoch(2), l.LastEpoch())
			assert.Equal(t, before, readAll(t, l, 1<<20))
		})
	}
	// The log still accepts the right continuation, in the same or a later epoch.
	require.NoError(t, l.Append(records(4, 1, 2)))
	require.NoError(t, l.Append(records(5, 1, 7)))
	assert.Equal(t, eventlog.Offset(5), l.Last())
}

func testAppendDoesNotRetain(t *testing.T, l eventlog.Log) {
	recs := records(1, 2, 1)
	want := []eventlog.Record{record(1, 1, 10), record(2, 1, 11)}
	require.Equal(t, want, recs)
	require.NoError(t, l.Append(recs))
	recs[0].Data[0]++
	recs[1].Type = "changed"
	got, err := l.Read(1, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, want, got, "Append must not retain the caller's records")
	got[0].Data[0]++
	again, err := l.Read(1, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, want, again, "the caller owns what Read returns")
}

func testReadBatching(t *testing.T, l eventlog.Log) {
	recs := records(1, 10, 1)
	require.NoError(t, l.Append(recs))
	size := func(from, to int) int { // encoded bytes of recs[from:to]
		n := 0
		for _, r := range recs[from:to] {
			n += encodedSize(t, r)
		}
		return n
	}
	tests := []struct {
		name     string
		from     eventlog.Offset
		maxBytes int
		want     int // records returned
	}{
		{"zero still returns one", 1, 0, 1},
		{"negative still returns one", 1, -5, 1},
		{"exactly one record", 1, size(0, 1), 1},
		{"one byte more than one record", 1, size(0, 1) + 1, 2},
		{"exactly three records", 1, size(0, 3), 3},
		{"just short of three records", 1, size(0, 3) - 1, 3},
		{"from the middle", 4, size(3, 5), 2},
		{"everything", 1, 1 << 20, 10},
		{"tail", 9, 1 << 20, 2},
		{"last only", 10, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Read(tt.from, tt.maxBytes)
			require.NoError(t, err)
			assert.Equal(t, recs[tt.from-1:int(tt.from-1)+tt.want], got)
		})
	}
}

func testReadPastEnd(t *testing.T, l eventlog.Log) {
	require.NoError(t, l.Append(records(1, 3, 1)))
	for _, from := range []eventlog.Offset{4, 5, 1 << 40} {
		got, err := l.Read(from, 1<<20)
		require.NoError(t, err, "from %d", from)
		assert.NotNil(t, got, "from %d", from)
		assert.Empty(t, got, "from %d", from)
	}
}

func testCompact(t *testing.T, l eventlog.Log) {
	recs := append(records(1, 5, 1), records(6, 5, 2)...)
	require.NoError(t, l.Append(recs))
	require.NoError(t, l.AddEpoch(eventlog.EpochStart{Epoch: 3, Start: 11}))

	assert.ErrorIs(t, l.Compact(11), eventlog.ErrOutOfRange, "beyond Last")
	require.NoError(t, l.Compact(4))
	assert.Equal(t, eventlog.Offset(5), l.First())
	assert.Equal(t, eventlog.Offset(10), l.Last())
	assert.Equal(t, recs[4:], readAll(t, l, 1<<20))
	for _, from := range []eventlog.Offset{0, 1, 4} {
		_, err := l.Read(from, 1<<20)
		assert.ErrorIs(t, err, eventlog.ErrCompacted, "read from %d", from)
	}
	require.NoError(t, l.Compact(2), "compacting an already compacted offset is a no-op")
	assert.Equal(t, eventlog.Offset(5), l.First())
	assert.Equal(t, []eventlog.EpochStart{{Epoch: 3, Start: 11}}, l.Epochs(), "Compact keeps the epoch history")

	// Compacting everything keeps Last and LastEpoch, and appends continue.
	require.NoError(t, l.Compact(10))
	assert.Equal(t, eventlog.Offset(11), l.First())
	assert.Equal(t, eventlog.Offset(10), l.Last())
	assert.Equal(t, eventlog.Epoch(2), l.LastEpoch())
	got, err := l.Read(11, 1<<20)
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.ErrorIs(t, l.Append(records(11, 1, 1)), eventlog.ErrNotContiguous, "epoch below the compacted last epoch")
	more := records(11, 2, 3)
	require.NoError(t, l.Append(more))
	assert.Equal(t, more, readAll(t, l, 1<<20))
}

func testTruncate(t *testing.T, l eventlog.Log) {
	recs := append(records(1, 4, 1), records(5, 4, 3)...)
	require.NoError(t, l.AddEpoch(eventlog.EpochStart{Epoch: 1, Start: 1}))
	require.NoError(t, l.Append(recs[:4]))
	require.NoError(t, l.AddEpoch(eventlog.EpochStart{Epoch: 2, Start: 5})) // wrote nothing
	require.NoError(t, l.AddEpoch(eventlog.EpochStart{Epoch: 3, Start: 5}))
	require.NoError(t, l.Append(recs[4:]))
	require.NoError(t, l.AddEpoch(eventlog.EpochStart{Epoch: 4, Start: 9}))

	// No-ops: at or past the end.
	for _, after := range []eventlog.Offset{8, 9, 100} {
		require.NoError(t, l.Truncate(after))
		assert.Equal(t, eventlog.Offset(8), l.Last())
		assert.Len(t, l.Epochs(), 4, "truncate after %d drops no epoch", after)
	}
	assert.Empty(t, rolledAll(t, l))

	require.NoError(t, l.Truncate(6))
	assert.Equal(t, eventlog.Offset(6), l.Last())
	assert.Equal(t, eventlog.Epoch(3), l.LastEpoch())
	assert.Equal(t, recs[:6], readAll(t, l, 1<<20))
	assert.Equal(t, []eventlog.EpochStart{es(1, 1), es(2, 5), es(3, 5)}, l.Epochs())
	assert.Equal(t, recs[6:], rolledAll(t, l), "removed records move to the rollback area")

	require.NoError(t, l.Truncate(4))
	assert.Equal(t, eventlog.Epoch(1), l.LastEpoch())
	assert.Equal(t, []eventlog.EpochStart{es(1, 1)}, l.Epochs(), "entries with Start > after are dropped")

	// The log continues after the truncation point, in a new epoch.
	require.NoError(t, l.AddEpoch(eventlog.EpochStart{Epoch: 5, Start: 5}))
	next := records(5, 2, 5)
	require.NoError(t, l.Append(next))
	assert.Equal(t, append(recs[:4:4], next...), readAll(t, l, 1<<20))

	require.NoError(t, l.Truncate(0))
	assert.Equal(t, eventlog.Offset(0), l.Last())
	assert.Equal(t, eventlog.Epoch(0), l.LastEpoch())
	assert.Equal(t, eventlog.Offset(1), l.First())
	assert.Empty(t, l.Epochs())
}

func testTruncateCompacted(t *testing.T, l eventlog.Log) {
	recs := append(records(1, 3, 1), records(4, 3, 2)...)
	require.NoError(t, l.Append(recs))
	require.NoError(t, l.Compact(4))
	assert.ErrorIs(t, l.Truncate(3), eventlog.ErrCompacted, "offset 4 is gone: cannot truncate before it")
	assert.Equal(t, eventlog.Offset(6), l.Last(), "nothing removed")
	// Truncating to the compaction point removes every retained record.
	require.NoError(t, l.Truncate(4))
	assert.Equal(t, eventlog.Offset(4), l.Last())
	assert.Equal(t, eventlog.Offset(5), l.First())
	assert.Equal(t, eventlog.Epoch(2), l.LastEpoch(), "the epoch of the compacted last record")
	assert.Equal(t, recs[4:], rolledAll(t, l))
}

func testRollbackArea(t *testing.T, l eventlog.Log) {
	first, second := records(1, 6, 1), records(5, 3, 2)
	require.NoError(t, l.Append(first))
	require.NoError(t, l.Truncate(4)) // first truncation: 5, 6
	require.NoError(t, l.Append(second))
	require.NoError(t, l.Truncate(3)) // second: 4, 5, 6, 7 (epochs 1, 2, 2, 2)
	want := append(slices.Clone(first[4:]), first[3])
	want = append(want, second...)
	assert.Equal(t, want, rolledAll(t, l), "oldest truncation first, offset order within one")

	for _, limit := range []int{-1, 0, 1, 3, 6, 7} {
		got, err := l.RolledBack(limit)
		require.NoError(t, err)
		assert.Equal(t, nonNil(want[:min(max(limit, 0), len(want))]), nonNil(got), "limit %d", limit)
	}
	got, err := l.RolledBack(2)
	require.NoError(t, err)
	got[0].Data[0]++
	assert.Equal(t, want, rolledAll(t, l), "the caller owns what RolledBack returns")

	assert.ErrorIs(t, l.DiscardRolledBack(7), eventlog.ErrOutOfRange)
	assert.ErrorIs(t, l.DiscardRolledBack(-1), eventlog.ErrOutOfRange)
	require.NoError(t, l.DiscardRolledBack(0))
	require.NoError(t, l.DiscardRolledBack(2))
	assert.Equal(t, want[2:], rolledAll(t, l))
	require.NoError(t, l.DiscardRolledBack(4))
	assert.Empty(t, rolledAll(t, l))
	// New truncations after a full discard still come out in order.
	require.NoError(t, l.Truncate(2))
	assert.Equal(t, first[2:3], rolledAll(t, l))
}

func testEpochs(t *testing.T, l eventlog.Log) {
	require.NoError(t, l.Append(records(1, 3, 1)))
	require.NoError(t, l.AddEpoch(eventlog.EpochStart{Epoch: 2, Start: 2}))
	tests := []struct {
		name string
		e    eventlog.EpochStart
	}{
		{"zero epoch", eventlog.EpochStart{Epoch: 0, Start: 4}},
		{"same epoch", eventlog.EpochStart{Epoch: 2, Start: 4}},
		{"older epoch", eventlog.EpochStart{Epoch: 1, Start: 4}},
		{"start before previous start", eventlog.EpochStart{Epoch: 3, Start: 1}},
		{"start past Last+1", eventlog.EpochStart{Epoch: 3, Start: 5}},
		{"start zero", eventlog.EpochStart{Epoch: 3, Start: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, l.AddEpoch(tt.e), eventlog.ErrEpochOrder)
			assert.Equal(t, []eventlog.EpochStart{es(2, 2)}, l.Epochs(), "nothing added")
		})
	}
	// Epochs that wrote nothing share a start; a start of Last+1 is fine.
	require.NoError(t, l.AddEpoch(eventlog.EpochStart{Epoch: 3, Start: 2}))
	require.NoError(t, l.AddEpoch(eventlog.EpochStart{Epoch: 7, Start: 4}))
	got := l.Epochs()
	assert.Equal(t, []eventlog.EpochStart{es(2, 2), es(3, 2), es(7, 4)}, got)
	got[0].Epoch = 99
	assert.Equal(t, eventlog.Epoch(2), l.Epochs()[0].Epoch, "the caller owns what Epochs returns")
}

func testRestore(t *testing.T, l eventlog.Log) {
	recs := records(1, 3, 1)
	require.NoError(t, l.Append(recs))
	require.NoError(t, l.Truncate(2)) // one record in the rollback area
	require.NoError(t, l.SetMeta("vote", []byte{1}))

	bad := []eventlog.EpochStart{{Epoch: 3, Start: 1}, {Epoch: 2, Start: 5}}
	assert.ErrorIs(t, l.Restore(100, 3, bad), eventlog.ErrEpochOrder)
	assert.Equal(t, eventlog.Offset(2), l.Last(), "nothing changed")
	assert.ErrorIs(t, l.Restore(100, 3, []eventlog.EpochStart{{Epoch: 3, Start: 102}}), eventlog.ErrEpochOrder)

	history := []eventlog.EpochStart{{Epoch: 1, Start: 1}, {Epoch: 3, Start: 50}, {Epoch: 4, Start: 101}}
	require.NoError(t, l.Restore(100, 3, history))
	assert.Equal(t, eventlog.Offset(100), l.Last())
	assert.Equal(t, eventlog.Offset(101), l.First())
	assert.Equal(t, eventlog.Epoch(3), l.LastEpoch())
	assert.Equal(t, history, l.Epochs())
	_, err := l.Read(100, 1<<20)
	assert.ErrorIs(t, err, eventlog.ErrCompacted)
	got, err := l.Read(101, 1<<20)
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.Equal(t, recs[2:], rolledAll(t, l), "Restore keeps the rollback area")
	v, ok, err := l.Meta("vote")
	require.NoError(t, err)
	assert.True(t, ok, "Restore keeps meta")
	assert.Equal(t, []byte{1}, v)

	assert.ErrorIs(t, l.Append(records(101, 1, 2)), eventlog.ErrNotContiguous, "epoch below the snapshot's")
	next := records(101, 2, 4)
	require.NoError(t, l.Append(next))
	assert.Equal(t, next, readAll(t, l, 1<<20))

	// Restoring backwards (a snapshot behind the log) is allowed too: it is
	// the caller's decision, and the log simply begins after it.
	require.NoError(t, l.Restore(10, 1, nil))
	assert.Equal(t, eventlog.Offset(10), l.Last())
	assert.Equal(t, eventlog.Offset(11), l.First())
	assert.Empty(t, l.Epochs())
}

func testMeta(t *testing.T, l eventlog.Log) {
	value := []byte("epoch=3")
	require.NoError(t, l.SetMeta("hard.state", value))
	value[0] = 'X'
	got, ok, err := l.Meta("hard.state")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, []byte("epoch=3"), got, "SetMeta must not retain the caller's slice")
	got[0] = 'Y'
	again, _, err := l.Meta("hard.state")
	require.NoError(t, err)
	assert.Equal(t, []byte("epoch=3"), again, "the caller owns what Meta returns")

	require.NoError(t, l.SetMeta("hard.state", []byte("epoch=4")))
	got, _, err = l.Meta("hard.state")
	require.NoError(t, err)
	assert.Equal(t, []byte("epoch=4"), got, "overwrite")

	require.NoError(t, l.SetMeta("empty", nil))
	got, ok, err = l.Meta("empty")
	require.NoError(t, err)
	assert.True(t, ok, "an empty value is still a value")
	assert.Empty(t, got)

	for _, name := range []string{"", "with space", "slash/name", "ünïcode", string(make([]byte, eventlog.MaxMetaName+1))} {
		assert.ErrorIs(t, l.SetMeta(name, []byte{1}), eventlog.ErrInvalidMeta, "set %q", name)
		_, _, err := l.Meta(name)
		assert.ErrorIs(t, err, eventlog.ErrInvalidMeta, "get %q", name)
	}
	assert.ErrorIs(t, l.SetMeta("big", make([]byte, eventlog.MaxMetaValue+1)), eventlog.ErrInvalidMeta)
	require.NoError(t, l.SetMeta("biggest", make([]byte, eventlog.MaxMetaValue)))
}

func testWaitWakesOnAppend(t *testing.T, l eventlog.Log) {
	require.NoError(t, l.Append(records(1, 2, 1)))
	require.NoError(t, l.Wait(t.Context(), 1), "already past: returns at once")

	done := make(chan error, 1)
	go func() { done <- l.Wait(t.Context(), 2) }()
	select {
	case err := <-done:
		t.Fatalf("Wait(2) returned %v before Last() > 2", err)
	default:
	}
	require.NoError(t, l.Append(records(3, 1, 1)))
	assert.NoError(t, <-done)
}

func testWaitCancel(t *testing.T, l eventlog.Log) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Wait(ctx, 0) }()
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
}

func testWaitClose(t *testing.T, l eventlog.Log) {
	done := make(chan error, 1)
	go func() { done <- l.Wait(t.Context(), 0) }()
	require.NoError(t, l.Close())
	assert.ErrorIs(t, <-done, eventlog.ErrClosed)
}

func testClosed(t *testing.T, l eventlog.Log) {
	require.NoError(t, l.Append(records(1, 2, 1)))
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "Close twice")
	_, err := l.Read(1, 10)
	assert.ErrorIs(t, err, eventlog.ErrClosed, "Read")
	assert.ErrorIs(t, l.Append(records(3, 1, 1)), eventlog.ErrClosed, "Append")
	assert.ErrorIs(t, l.Truncate(1), eventlog.ErrClosed, "Truncate")
	assert.ErrorIs(t, l.AddEpoch(eventlog.EpochStart{Epoch: 1, Start: 1}), eventlog.ErrClosed, "AddEpoch")
	assert.ErrorIs(t, l.Compact(1), eventlog.ErrClosed, "Compact")
	assert.ErrorIs(t, l.Restore(5, 1, nil), eventlog.ErrClosed, "Restore")
	_, err = l.RolledBack(1)
	assert.ErrorIs(t, err, eventlog.ErrClosed, "RolledBack")
	assert.ErrorIs(t, l.DiscardRolledBack(0), eventlog.ErrClosed, "DiscardRolledBack")
	assert.ErrorIs(t, l.SetMeta("a", nil), eventlog.ErrClosed, "SetMeta")
	_, _, err = l.Meta("a")
	assert.ErrorIs(t, err, eventlog.ErrClosed, "Meta")
	assert.ErrorIs(t, l.Wait(t.Context(), 5), eventlog.ErrClosed, "Wait")
}

// testConcurrentReaders runs one writer and several tailing readers; under
// -race it also checks the implementation's locking.
func testConcurrentReaders(t *testing.T, l eventlog.Log) {
	const batches, perBatch, readers = 40, 5, 4
	total := eventlog.Offset(batches * perBatch)
	var wg sync.WaitGroup
	errs := make(chan error, readers+1)
	wg.Go(func() {
		for i := range batches {
			recs := records(l.Last()+1, perBatch, eventlog.Epoch(1+i/10))
			if err := l.Append(recs); err != nil {
				errs <- fmt.Errorf("append batch %d: %w", i, err)
				return
			}
		}
	})
	for r := range readers {
		wg.Go(func() {
			next := eventlog.Offset(1)
			for next <= total {
				if err := l.Wait(t.Context(), next-1); err != nil {
					errs <- fmt.Errorf("reader %d: wait after %d: %w", r, next-1, err)
					return
				}
				batch, err := l.Read(next, 100*(r+1))
				if err != nil {
					errs <- fmt.Errorf("reader %d: read from %d: %w", r, next, err)
					return
				}
				for _, rec := range batch {
					epoch := eventlog.Epoch(1 + int(next-1)/perBatch/10)
					want := record(next, epoch, 10+int(next-1)%perBatch)
					if !reflect.DeepEqual(rec, want) {
						errs <- fmt.Errorf("reader %d: got %+v, want %+v", r, rec, want)
						return
					}
					next++
				}
				_ = l.First() // concurrent with the writer's updates
				_ = l.Epochs()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, total, l.Last())
}

func testProperty(t *testing.T, l eventlog.Log) {
	steps := 300
	if testing.Short() {
		steps = 100
	}
	runProperty(t, l, propertyConfig{seed: 1, steps: steps})
}

// es is a short EpochStart literal for tables.
func es(epoch eventlog.Epoch, start eventlog.Offset) eventlog.EpochStart {
	return eventlog.EpochStart{Epoch: epoch, Start: start}
}
