package shell

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

// With no fork reserve (ForkRetain 0), a primary whose backup is down never
// compacts past the offset durable on every replica: a fork could still
// discard those records, and this replica would have to re-submit them.
func TestSnapshot_NoCompactionPastTheStableOffset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newSnapshotClusterForkRetain(t, 0)
		p := c.primary()
		b := (p + 1) % 3
		c.stop(b)
		for seq := uint64(1); seq <= 150; seq++ {
			require.NoError(t, c.propose(p, "a", seq))
		}
		synctest.Wait()
		st := c.nodes[p].shell.Status()
		assert.GreaterOrEqual(t, c.nodes[p].shell.snaps.latestOffset(), eventlog.Offset(100), "snapshots are taken")
		assert.LessOrEqual(t, c.nodes[p].log.First(), eventlog.Offset(st.Stable)+1,
			"nothing past the stable offset %d is compacted", st.Stable)
		// Once the backup is back and has every record, the next snapshots
		// let compaction pass.
		c.start(b)
		for seq := uint64(151); c.nodes[p].log.First() <= 100; seq++ {
			require.Less(t, seq, uint64(2000), "compaction resumes once every replica holds the records")
			require.NoError(t, c.propose(p, "a", seq))
			time.Sleep(10 * time.Millisecond) // ticks: heartbeats, the catch-up
		}
	})
}

func writeTestSnapshot(t *testing.T, dir string, m snapshotMeta) {
	t.Helper()
	d := snapshotPath(dir, m.Offset)
	require.NoError(t, os.MkdirAll(d, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(d, "state"), nil, 0o644))
	b, err := msgpack.Marshal(&m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(d, "meta"), b, 0o644))
}

// At start, a snapshot that no longer describes the log (it covers records
// past its end, or another epoch at its offset: a crash while a fork's
// truncation dropped it) is removed; one that matches stays.
func TestSnapshot_StartDropsSnapshotsTheLogNoLongerHolds(t *testing.T) {
	log := eventlog.NewMemoryLog()
	require.NoError(t, log.Append([]eventlog.Record{{Offset: 1, Epoch: 1}, {Offset: 2, Epoch: 1}, {Offset: 3, Epoch: 4}, {Offset: 4, Epoch: 4}}))
	require.NoError(t, log.AddEpoch(eventlog.EpochStart{Epoch: 1, Start: 1}))
	require.NoError(t, log.AddEpoch(eventlog.EpochStart{Epoch: 4, Start: 3}))
	dir := t.TempDir()
	writeTestSnapshot(t, dir, snapshotMeta{Offset: 2, Epoch: 1})
	writeTestSnapshot(t, dir, snapshotMeta{Offset: 3, Epoch: 2}) // another branch's record 3
	writeTestSnapshot(t, dir, snapshotMeta{Offset: 9, Epoch: 4}) // past the end
	s, err := New(Config{Node: replica.Config{ID: 0, Peers: []replica.NodeID{0, 1}, HeartbeatTicks: 2, FailoverTicks: 20},
		Log: log, StateMachine: &snapSM{}, Transport: journalTransport{&journal{}}, SnapshotDir: dir})
	require.NoError(t, err)
	require.NoError(t, s.initSnapshots())
	var offs []eventlog.Offset
	for _, m := range s.snaps.metas {
		offs = append(offs, m.Offset)
	}
	assert.Equal(t, []eventlog.Offset{2}, offs)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "the others are gone from the disk")
}

// A truncation below a snapshot (a fork) drops it, from the list and the
// disk, before the log changes: it describes a branch the cluster discards.
func TestSnapshot_TruncationDropsSnapshotsAboveIt(t *testing.T) {
	dir := t.TempDir()
	s := &Shell{cfg: Config{SnapshotDir: dir}, logger: discardLogger()}
	s.snaps.dir = dir
	s.snaps.inUse = map[eventlog.Offset]int{}
	s.snaps.senders = map[replica.NodeID]*snapshotSender{}
	for _, off := range []eventlog.Offset{10, 20, 30} {
		m := snapshotMeta{Offset: off, Epoch: 1}
		writeTestSnapshot(t, dir, m)
		s.snaps.add(m)
	}
	require.NoError(t, s.dropSnapshotsAbove(15))
	require.Len(t, s.snaps.metas, 1)
	assert.Equal(t, eventlog.Offset(10), s.snaps.metas[0].Offset)
	assert.Equal(t, eventlog.Offset(10), s.snaps.latestOffset())
	for _, off := range []eventlog.Offset{20, 30} {
		_, err := os.Stat(snapshotPath(dir, off))
		assert.ErrorIs(t, err, os.ErrNotExist, "snapshot %d removed", off)
	}
	assert.LessOrEqual(t, s.snaps.lastTaken, eventlog.Offset(15), "the next snapshot is due from the truncation point")
}

// Installing a snapshot keeps, for re-submission, the records of this
// replica's log that the snapshot's history does not hold (a losing side's
// branch; records beyond the snapshot), and drops those it does.
func TestSnapshot_InstallKeepsDivergentRecordsForResubmission(t *testing.T) {
	for _, tt := range []struct {
		name       string
		snapEpochs []eventlog.EpochStart
		snapOffset eventlog.Offset
		wantRolled []eventlog.Offset
	}{
		// The log: 1-4 in epoch 1, 5-8 in epoch 2.
		{"same history, snapshot beyond the log", []eventlog.EpochStart{{Epoch: 1, Start: 1}, {Epoch: 2, Start: 5}}, 12, nil},
		{"same history, records beyond the snapshot", []eventlog.EpochStart{{Epoch: 1, Start: 1}, {Epoch: 2, Start: 5}}, 6, []eventlog.Offset{7, 8}},
		{"forked at 4 (epoch 3 won)", []eventlog.EpochStart{{Epoch: 1, Start: 1}, {Epoch: 3, Start: 5}}, 12, []eventlog.Offset{5, 6, 7, 8}},
		{"forked before the log's first record", []eventlog.EpochStart{{Epoch: 3, Start: 1}}, 12, []eventlog.Offset{3, 4, 5, 6, 7, 8}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			log := eventlog.NewMemoryLog()
			var recs []eventlog.Record
			for off := eventlog.Offset(1); off <= 8; off++ {
				e := eventlog.Epoch(1)
				if off >= 5 {
					e = 2
				}
				recs = append(recs, eventlog.Record{Offset: off, Epoch: e, ClientID: "c", Seq: uint64(off)})
			}
			require.NoError(t, log.Append(recs))
			require.NoError(t, log.AddEpoch(eventlog.EpochStart{Epoch: 1, Start: 1}))
			require.NoError(t, log.AddEpoch(eventlog.EpochStart{Epoch: 2, Start: 5}))
			require.NoError(t, log.Compact(2))
			s := &Shell{log: log, logger: discardLogger()}
			require.NoError(t, s.keepForResubmission(snapshotMeta{Offset: tt.snapOffset, Epochs: tt.snapEpochs}))
			rolled, err := log.RolledBack(100)
			require.NoError(t, err)
			var got []eventlog.Offset
			for _, r := range rolled {
				got = append(got, r.Offset)
			}
			assert.Equal(t, tt.wantRolled, got, fmt.Sprintf("log now ends at %d", log.Last()))
		})
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
