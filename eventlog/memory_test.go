package eventlog_test

// MemoryLog must pass the same conformance suite as BadgerLog. Its Clone is
// the simulator's disk of a crashed node: the durable suite runs with Close
// meaning "crash" and reopen meaning "restart from a Clone", and the copy and
// the original must never see each other's later writes.

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/eventlog/eventlogtest"
)

func TestMemoryLog_Conformance(t *testing.T) {
	eventlogtest.Run(t, func(t *testing.T) eventlog.Log { return eventlog.NewMemoryLog() })
}

func TestMemoryLog_CloneAsDisk(t *testing.T) {
	disks := map[string]*eventlog.MemoryLog{}
	eventlogtest.RunDurable(t, func(t *testing.T, dir string) eventlog.Log {
		if d, ok := disks[dir]; ok {
			// d was closed by the suite; its clone is the restarted node.
			disks[dir] = d.Clone()
		} else {
			disks[dir] = eventlog.NewMemoryLog()
		}
		return disks[dir]
	})
}

func TestMemoryLog_CloneIsIndependent(t *testing.T) {
	rec := func(off eventlog.Offset, epoch eventlog.Epoch, b byte) eventlog.Record {
		return eventlog.Record{Offset: off, Epoch: epoch, Type: "t", Data: []byte{b}}
	}
	orig := eventlog.NewMemoryLog()
	require.NoError(t, orig.Append([]eventlog.Record{rec(1, 1, 'a'), rec(2, 1, 'b'), rec(3, 1, 'c')}))
	require.NoError(t, orig.AddEpoch(eventlog.EpochStart{Epoch: 1, Start: 1}))
	require.NoError(t, orig.SetMeta("vote", []byte{1}))
	require.NoError(t, orig.Truncate(2))

	clone := orig.Clone()
	// Diverge both sides in every part of the state. Each side truncates and
	// then appends at the same offsets, the case that would overwrite a
	// shared backing array.
	require.NoError(t, orig.Truncate(1))
	require.NoError(t, orig.Append([]eventlog.Record{rec(2, 2, 'X')}))
	require.NoError(t, orig.AddEpoch(eventlog.EpochStart{Epoch: 2, Start: 2}))
	require.NoError(t, orig.SetMeta("vote", []byte{2}))
	require.NoError(t, clone.Append([]eventlog.Record{rec(3, 3, 'Y')}))
	require.NoError(t, clone.Truncate(2))
	require.NoError(t, clone.Append([]eventlog.Record{rec(3, 4, 'Z')}))
	require.NoError(t, clone.DiscardRolledBack(1))

	read := func(l *eventlog.MemoryLog) []eventlog.Record {
		got, err := l.Read(1, 1<<20)
		require.NoError(t, err)
		return got
	}
	rolled := func(l *eventlog.MemoryLog) []eventlog.Record {
		got, err := l.RolledBack(100)
		require.NoError(t, err)
		return got
	}
	meta := func(l *eventlog.MemoryLog) []byte {
		v, _, err := l.Meta("vote")
		require.NoError(t, err)
		return v
	}
	assert.Equal(t, []eventlog.Record{rec(1, 1, 'a'), rec(2, 2, 'X')}, read(orig))
	assert.Equal(t, []eventlog.Record{rec(3, 1, 'c'), rec(2, 1, 'b')}, rolled(orig))
	assert.Equal(t, []eventlog.EpochStart{{Epoch: 1, Start: 1}, {Epoch: 2, Start: 2}}, orig.Epochs())
	assert.Equal(t, []byte{2}, meta(orig))

	assert.Equal(t, []eventlog.Record{rec(1, 1, 'a'), rec(2, 1, 'b'), rec(3, 4, 'Z')}, read(clone))
	assert.Equal(t, []eventlog.Record{rec(3, 3, 'Y')}, rolled(clone))
	assert.Equal(t, []eventlog.EpochStart{{Epoch: 1, Start: 1}}, clone.Epochs())
	assert.Equal(t, []byte{1}, meta(clone))

	// Closing the original (a crash) leaves the clone open.
	require.NoError(t, orig.Close())
	require.NoError(t, clone.Append([]eventlog.Record{rec(4, 4, 'W')}))
}

func BenchmarkMemoryLog_Clone(b *testing.B) {
	l := eventlog.NewMemoryLog()
	const n = 10_000
	recs := make([]eventlog.Record, n)
	for i := range recs {
		recs[i] = eventlog.Record{Offset: eventlog.Offset(i + 1), Epoch: 1, Type: "chat.send", Data: make([]byte, 100)}
	}
	if err := l.Append(recs); err != nil {
		b.Fatal(err)
	}
	next := eventlog.Offset(n + 1)
	for b.Loop() {
		// The simulator's pattern: take the disk, then keep writing.
		c := l.Clone()
		if err := l.Append([]eventlog.Record{{Offset: next, Epoch: 1, Type: "chat.send"}}); err != nil {
			b.Fatal(err)
		}
		next++
		_ = c
	}
}
