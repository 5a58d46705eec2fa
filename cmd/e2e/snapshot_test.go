package e2e

// Snapshots and compaction with three real chatd processes (issue 11):
//
//   - a backup is SIGKILLed before thousands of sends and stays down while
//     the others snapshot every 200 events and compact their logs past it;
//     restarted (and, separately, with its data directory wiped) it
//     installs a snapshot, catches up and rejoins, and every acknowledged
//     send is present exactly once, with identical states on every replica;
//   - deletes really delete: messages deleted by both their sender and
//     their recipient, and an account deleted with its messages, are gone
//     from every byte of every file of every replica's data directory once
//     compaction has passed them, while a message not deleted is found in
//     the same files by the same search (random, incompressible bodies: the
//     search is not defeated by Badger's Snappy compression).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/bench/cluster"
	"github.com/replichat/replichat/bench/datafiles"
	"github.com/replichat/replichat/chat/wire"
)

// snapshotArgs make compaction happen within a test's few thousand events.
var snapshotArgs = []string{"--snapshot-every", "200", "--retain-events", "50", "--fork-retain", "300"}

func startSnapshotCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	c, err := cluster.Start(t.Context(), cluster.Config{Chatd: bins.Chatd, Dir: t.TempDir(), Replicas: 3,
		Args: slices.Concat(chatdArgs, snapshotArgs)})
	require.NoError(t, err)
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			for id := range 3 {
				t.Logf("replica %d log:\n%s", id, tailFile(c.LogPath(id), 6<<10))
			}
		}
	})
	return c
}

// logHas reports whether replica id's log (stderr) holds s.
func logHas(t *testing.T, c *cluster.Cluster, id int, s string) bool {
	t.Helper()
	b, err := os.ReadFile(c.LogPath(id))
	require.NoError(t, err)
	return bytes.Contains(b, []byte(s))
}

// logLines logs the lines of replica id's log that hold any of words.
func logLines(t *testing.T, c *cluster.Cluster, id int, words ...string) {
	t.Helper()
	b, err := os.ReadFile(c.LogPath(id))
	require.NoError(t, err)
	for line := range strings.Lines(string(b)) {
		if slices.ContainsFunc(words, func(w string) bool { return strings.Contains(line, w) }) {
			t.Logf("replica %d: %s", id, strings.TrimSpace(line))
		}
	}
}

func TestSnapshot_BackupDownThroughoutInstallsOne(t *testing.T) {
	t.Parallel()
	for _, wipe := range []bool{false, true} {
		name := "restarted"
		if wipe {
			name = "wiped"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := startSnapshotCluster(t)
			p := waitPrimary(t, c)
			b := (p + 1) % 3
			require.NoError(t, c.Kill(b))

			sink := newClient(t, c, "sink", "pw", true)
			senders := make([]*sender, 2)
			for i := range senders {
				name := fmt.Sprintf("sender%d", i)
				senders[i] = &sender{name: name, to: "sink", cl: newClient(t, c, name, "pw", true)}
			}
			stopSenders := runSenders(t, senders...)
			const perSender = 1500 // thousands of sends, while b is down
			waitLong(t, fmt.Sprintf("%d sends each", perSender), 3*time.Minute, func() bool {
				return !slices.ContainsFunc(senders, func(s *sender) bool { return s.ackedCount() < perSender })
			})
			require.True(t, logHas(t, c, p, `msg="snapshot taken"`), "the primary takes snapshots")

			if wipe {
				require.NoError(t, c.Wipe(b))
			}
			require.NoError(t, c.Restart(t.Context(), b))
			waitLong(t, "the restarted backup installs a snapshot", time.Minute, func() bool {
				return logHas(t, c, b, `msg="snapshot installed; catching up from it"`)
			})
			// Sends go on while it catches up and rejoins.
			least := min(senders[0].ackedCount(), senders[1].ackedCount())
			waitAcked(t, senders, least+50)
			stopSenders()
			var last []wire.ReplicaStatus
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
				st, ok := ownStatuses(t, c)
				if ok {
					break
				}
				last = st
				require.True(t, time.Now().Before(deadline), "the replicas did not converge: %+v", last)
			}

			for _, id := range []int{p, b} {
				logLines(t, c, id, "snapshot installed", "backup needs a snapshot", "streaming a snapshot")
			}
			ids := checkSends(t, senders, allHistory(t, sink))
			require.GreaterOrEqual(t, len(ids), 2*perSender)
			// Crash all three at once (well within the failure timeout, so
			// no election adds a record to some), then read them offline.
			for id := range 3 {
				require.NoError(t, c.Kill(id))
			}
			checkCompactedReplicasAgree(t, c)
		})
	}
}

// checkCompactedReplicasAgree checks stopped replicas whose logs are
// compacted (each on its own schedule): the same state (applied offset and
// digest, each from its own snapshot and retained log), and the same
// events at the offsets all of them retain.
func checkCompactedReplicasAgree(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	var states []stateSummary
	var events [][]replayEvent
	for id := range 3 {
		res := replay(t, c.DataDir(id), "--json")
		assert.Contains(t, res.stderr, "is compacted: it starts at offset", "replica %d's log is compacted", id)
		var evs []replayEvent
		for _, l := range res.lines(t) {
			var ev replayEvent
			require.NoError(t, json.Unmarshal(l, &ev))
			evs = append(evs, ev)
		}
		require.NotEmpty(t, evs)
		events = append(events, evs)
		states = append(states, replayState(t, c.DataDir(id)))
	}
	common := max(events[0][0].Offset, events[1][0].Offset, events[2][0].Offset)
	// The records' own fields: names and results are printed only after
	// each replica's snapshot, which differ.
	tail := func(evs []replayEvent) []replayEvent {
		i := slices.IndexFunc(evs, func(e replayEvent) bool { return e.Offset >= common })
		var out []replayEvent
		for _, e := range evs[i:] {
			out = append(out, replayEvent{Offset: e.Offset, Epoch: e.Epoch, Type: e.Type, Time: e.Time,
				Client: e.Client, Seq: e.Seq, ID: e.ID, Body: e.Body, Resubmitted: e.Resubmitted})
		}
		return out
	}
	for id := 1; id < 3; id++ {
		assert.Equal(t, states[0], states[id], "replica %d's state differs from replica 0's", id)
		assert.Equal(t, tail(events[0]), tail(events[id]), "replica %d's retained events differ from replica 0's", id)
	}
}

// randomName returns a valid user name that appears nowhere by chance.
func randomName(rng *rand.Rand, prefix string) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := []byte(prefix)
	for range 20 {
		b = append(b, letters[rng.IntN(len(letters))])
	}
	return string(b)
}

// dirHolding returns, for each needle, the files under dirs that hold it.
func dirHolding(t *testing.T, dirs []string, needles ...string) map[string][]string {
	t.Helper()
	found, err := datafiles.Holding(dirs, needles...)
	require.NoError(t, err)
	return found
}

func TestSnapshot_DeletesAreGoneFromEveryFile(t *testing.T) {
	t.Parallel()
	c := startSnapshotCluster(t)
	waitPrimary(t, c)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	carol := randomName(rng, "carol")
	keep := "keep " + datafiles.RandomText(rng, 64)
	gone := "gone " + datafiles.RandomText(rng, 64)
	fromCarol := "from carol " + datafiles.RandomText(rng, 64)
	toCarol := "to carol " + datafiles.RandomText(rng, 64)

	alice := newClient(t, c, "alice", "pw", true)
	bob := newClient(t, c, "bob", "pw", true)
	dave := newClient(t, c, "dave", "pw", true)
	carolCl := newClient(t, c, carol, "pw", true)
	ctx := t.Context()
	_, err := alice.Send(ctx, "bob", keep)
	require.NoError(t, err)
	g, err := alice.Send(ctx, "bob", gone)
	require.NoError(t, err)
	fc, err := carolCl.Send(ctx, "dave", fromCarol)
	require.NoError(t, err)
	tc, err := dave.Send(ctx, carol, toCarol)
	require.NoError(t, err)

	dirs := []string{c.DataDir(0), c.DataDir(1), c.DataDir(2)}
	secrets := []string{datafiles.Mid(gone), datafiles.Mid(fromCarol), datafiles.Mid(toCarol), datafiles.Mid(carol)}
	keepMid := datafiles.Mid(keep)
	waitLong(t, "every replica holds the messages", time.Minute, func() bool {
		found := dirHolding(t, dirs, secrets...)
		for _, s := range secrets {
			for _, d := range dirs {
				if !slices.ContainsFunc(found[s], func(p string) bool { return strings.HasPrefix(p, d+"/") }) {
					return false
				}
			}
		}
		return true
	})

	// The message deleted by both sides; carol's messages by dave, then
	// her account.
	_, err = alice.DeleteMessages(ctx, []uint64{g.ID})
	require.NoError(t, err)
	_, err = bob.DeleteMessages(ctx, []uint64{g.ID})
	require.NoError(t, err)
	_, err = dave.DeleteMessages(ctx, []uint64{fc.ID, tc.ID})
	require.NoError(t, err)
	_, err = carolCl.DeleteAccount(ctx)
	require.NoError(t, err)

	// Enough events after the deletes for every replica to snapshot at
	// least --retain-events past them and compact there.
	newClient(t, c, "sink", "pw", true)
	s := &sender{name: "filler", to: "sink", cl: newClient(t, c, "filler", "pw", true)}
	stop := runSenders(t, s)
	waitAcked(t, []*sender{s}, 600)
	stop()

	waitLong(t, "the deleted data is gone from every replica", 2*time.Minute, func() bool {
		found := dirHolding(t, dirs, secrets...)
		return len(found) == 0
	})
	found := dirHolding(t, dirs, append(secrets, keepMid)...)
	for _, s := range secrets {
		assert.Empty(t, found[s], "%.20q is in no file", s)
	}
	for _, d := range dirs {
		assert.True(t, slices.ContainsFunc(found[keepMid], func(p string) bool { return strings.HasPrefix(p, d+"/") }),
			"the message not deleted is found in %s (positive control): %v", d, found[keepMid])
	}
	for id := range 3 {
		assert.True(t, logHas(t, c, id, `msg="purged deleted data from the disk"`), "replica %d purged", id)
		logLines(t, c, id, "purge")
	}
	// The service is whole: bob still has the kept message, nothing else
	// from alice.
	var bodies []string
	for _, m := range allHistory(t, bob) {
		bodies = append(bodies, m.Body)
	}
	assert.Equal(t, []string{keep}, bodies)
	us, _, err := alice.Users(ctx, carol, "", 10)
	require.NoError(t, err)
	assert.Empty(t, us, "the account is gone")
}
