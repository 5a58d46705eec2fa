package shell

// Snapshots bound the log (snapshot.go): these tests run three shells with
// snapshots every few records and a short retained log, keep a backup down
// (or wipe it) while the primary compacts past it, and check that it gets
// the primary's snapshot streamed, installs it and catches up with every
// record applied once.

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

// snapSM is a listSM that can be snapshotted: its records, encoded.
type snapSM struct{ listSM }

func (m *snapSM) WriteSnapshot(w io.Writer) (eventlog.Offset, error) {
	m.mu.Lock()
	recs := append([]eventlog.Record(nil), m.recs...)
	m.mu.Unlock()
	return eventlog.Offset(len(recs)), msgpack.NewEncoder(w).Encode(recs)
}

func (m *snapSM) RestoreSnapshot(r io.Reader) (eventlog.Offset, error) {
	var recs []eventlog.Record
	if err := msgpack.NewDecoder(r).Decode(&recs); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = recs
	return eventlog.Offset(len(recs)), nil
}

func newSnapshotCluster(t *testing.T) *testCluster {
	t.Helper()
	return newSnapshotClusterForkRetain(t, 5)
}

// newSnapshotClusterForkRetain starts three replicas taking a snapshot
// every 20 records, retaining 5 behind it, and compacting at most
// forkRetain records past the offset durable on every replica (0: never).
func newSnapshotClusterForkRetain(t *testing.T, forkRetain uint64) *testCluster {
	t.Helper()
	c := &testCluster{t: t, snapshots: &snapshotConfig{every: 20, retain: 5, forkRetain: forkRetain}}
	for range 3 {
		c.snapshots.dirs = append(c.snapshots.dirs, t.TempDir())
	}
	return c.startAll(3, func() StateMachine { return &snapSM{} })
}

func TestSnapshot_BackupBehindTheCompactedLogInstallsOne(t *testing.T) {
	for _, wipe := range []bool{false, true} {
		t.Run(fmt.Sprintf("wiped=%v", wipe), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newSnapshotCluster(t)
				p := c.primary()
				b := (p + 1) % 3
				c.stop(b)
				var want []string
				// Sends go on until the log is compacted past 50: how far a
				// snapshot lags behind the applied offset depends on how
				// long its write (an fsync) takes in real time, while the
				// loop goes on applying.
				seq := uint64(0)
				for c.nodes[p].log.First() <= 50 {
					seq++
					require.Less(t, seq, uint64(2000), "the primary compacts its log past the down backup")
					require.NoError(t, c.propose(p, "a", seq))
					want = append(want, fmt.Sprintf("a/%d", seq))
				}
				synctest.Wait() // no snapshot is being written
				snaps, err := os.ReadDir(c.snapshots.dirs[p])
				require.NoError(t, err)
				snaps = slices.DeleteFunc(snaps, func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), "tmp-") })
				assert.LessOrEqual(t, len(snaps), 3, "old snapshots are dropped (the base, the next base and the latest stay)")
				if wipe {
					c.nodes[b].log = eventlog.NewMemoryLog()
					c.nodes[b].sm = &snapSM{}
					require.NoError(t, os.RemoveAll(c.snapshots.dirs[b]))
				}
				c.start(b)
				c.waitApplied(b, want)
				assert.Greater(t, c.nodes[b].log.First(), eventlog.Offset(1), "its log begins after the snapshot")
				bst := c.nodes[b].shell.Status().Snapshots
				assert.Equal(t, uint64(1), bst.Installed, "status counts the install")
				assert.Equal(t, uint64(c.nodes[b].log.First()), bst.LogFirst)
				pst := c.nodes[p].shell.Status().Snapshots
				assert.Positive(t, pst.Taken)
				assert.Positive(t, pst.Base, "the primary has a base to offer")
				assert.LessOrEqual(t, pst.Base, pst.Latest)
				assert.Less(t, pst.LogFirst-1, pst.Base+1, "compaction stops at the base")
				require.NoError(t, c.propose(c.primary(), "a", seq+1))
				want = append(want, fmt.Sprintf("a/%d", seq+1))
				for i := range 3 {
					c.waitApplied(i, want)
				}
			})
		})
	}
}

// A snapshot whose bytes were damaged in flight (or on the sender's disk)
// fails its SHA-256 and is not installed.
func TestSnapshot_DamagedSnapshotIsRejected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newSnapshotCluster(t)
		p := c.primary()
		b := (p + 1) % 3
		c.stop(b)
		for seq := uint64(1); c.nodes[p].log.First() <= 20; seq++ {
			require.Less(t, seq, uint64(2000), "the primary compacts its log past the down backup")
			require.NoError(t, c.propose(p, "a", seq))
		}
		// Every snapshot writer is done (nothing runs in the bubble until
		// this goroutine blocks again).
		synctest.Wait()
		// Flip a byte of every snapshot the primary holds: it streams the
		// damage, and the backup refuses it.
		entries, err := os.ReadDir(c.snapshots.dirs[p])
		require.NoError(t, err)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "tmp-") {
				continue
			}
			path := filepath.Join(c.snapshots.dirs[p], e.Name(), "state")
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			data[len(data)/2] ^= 0xff
			require.NoError(t, os.WriteFile(path, data, 0o644))
		}
		c.start(b)
		time.Sleep(3 * time.Second)
		assert.Equal(t, eventlog.Offset(1), c.nodes[b].log.First(), "nothing installed from a damaged snapshot")
		assert.Contains(t, c.nodes[b].shell.Status().Waiting, "installing a snapshot", "it says what it waits for")
	})
}

// A crash between the state's restore and the log's (the install marker is
// set) is finished at the next start, from the received snapshot.
func TestSnapshot_InterruptedInstallFinishesAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newSnapshotCluster(t)
		p := c.primary()
		b := (p + 1) % 3
		var want []string
		for seq := uint64(1); seq <= 60; seq++ {
			require.NoError(t, c.propose(p, "a", seq))
			want = append(want, fmt.Sprintf("a/%d", seq))
		}
		require.Eventually(t, func() bool { return c.nodes[p].shell.snaps.latestOffset() >= 40 }, 10*time.Second, 10*time.Millisecond)
		c.stop(b)
		synctest.Wait() // no snapshot is being taken or dropped
		// b "received" the primary's latest snapshot and crashed mid-install.
		src := snapshotPath(c.snapshots.dirs[p], c.nodes[p].shell.snaps.latestOffset())
		dst := filepath.Join(c.snapshots.dirs[b], "tmp-recv-crashed")
		require.NoError(t, os.MkdirAll(dst, 0o755))
		for _, f := range []string{"state", "meta"} {
			data, err := os.ReadFile(filepath.Join(src, f))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dst, f), data, 0o644))
		}
		c.nodes[b].log = eventlog.NewMemoryLog()
		c.nodes[b].sm = &snapSM{}
		require.NoError(t, c.nodes[b].log.SetMeta(installKey, []byte(dst)))
		c.start(b)
		c.waitApplied(b, want)
		assert.Greater(t, c.nodes[b].log.First(), eventlog.Offset(1))
		_, ok, err := c.nodes[b].log.Meta(installKey)
		require.NoError(t, err)
		assert.True(t, ok, "the marker is kept, emptied")
	})
}

// A backup installs only a snapshot its core asked for: an offer that
// arrives unasked (a stale stream from before it caught up) is not
// received, since installing it would roll back records it holds.
func TestSnapshot_UnaskedOfferIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newSnapshotCluster(t)
		p := c.primary()
		b := (p + 1) % 3
		for seq := range uint64(30) {
			require.NoError(t, c.propose(p, "a", seq+1))
		}
		synctest.Wait()
		require.Equal(t, replica.None, c.nodes[b].shell.node.Status().SnapshotFrom)
		last := c.nodes[b].log.Last()
		c.nodes[p].shell.sendFrame(replica.NodeID(b), frameOffer,
			snapshotOffer{Meta: snapshotMeta{Offset: last + 100, Size: 3 * snapshotChunk}, Chunks: 3})
		synctest.Wait()
		assert.Zero(t, c.nodes[b].shell.Status().Snapshots.ReceivingOffset, "the unasked offer is not received")
		assert.Equal(t, last, c.nodes[b].log.Last())
	})
}

// A stream that ends after the backup caught up by other means is dropped,
// not installed: the check runs before the install as well as at the offer
// (unwantedSnapshot). Installing it would roll the backup back to the
// snapshot's log and ISR.
func TestSnapshot_UnwantedAtInstall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newSnapshotCluster(t)
		p := c.primary()
		b := (p + 1) % 3
		other := (p + 2) % 3
		for seq := range uint64(30) {
			require.NoError(t, c.propose(p, "a", seq+1))
		}
		synctest.Wait()
		sh := c.nodes[b].shell
		last := c.nodes[b].log.Last()
		assert.Equal(t, "this replica already holds that far", sh.unwantedSnapshot(replica.NodeID(p), last-1))
		assert.Equal(t, "not asked for", sh.unwantedSnapshot(replica.NodeID(p), last+100),
			"a backup in sync asks for no snapshot")
		assert.Contains(t, sh.unwantedSnapshot(replica.NodeID(other), last+100), "is not this backup's primary")
	})
}
