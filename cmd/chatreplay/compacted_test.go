package main

// chatreplay on a compacted data directory: it prints from the first
// retained offset and says where the snapshot is; --state --to N works for
// any N from a snapshot on, equal to a replay from zero of an uncompacted
// copy of the same log, and is a clear error before it. The directory is
// written by the real thing: a one-replica replication shell over a Badger
// log and a chatdb state, taking snapshots every few records.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/chat/server"
	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
	"github.com/replichat/replichat/replica/shell"
)

// recordingSM is the server's state machine that also keeps every record
// applied: with a one-replica shell, exactly the log, before compaction.
type recordingSM struct {
	*server.StateMachine
	mu   sync.Mutex
	recs []eventlog.Record
}

func (m *recordingSM) Apply(recs []eventlog.Record) error {
	m.mu.Lock()
	m.recs = append(m.recs, recs...)
	m.mu.Unlock()
	return m.StateMachine.Apply(recs)
}

// compactedDir writes a replica data directory (log/, state/, snapshots/)
// with a one-replica shell: snapshots every `every` records, `retain`
// kept behind the latest, about n chat commands. It returns the records
// the log held before compaction.
func compactedDir(t *testing.T, dir string, every, retain uint64, n int) []eventlog.Record {
	t.Helper()
	log, err := eventlog.OpenBadger(filepath.Join(dir, logSubdir), eventlog.BadgerOptions{})
	require.NoError(t, err)
	db, err := chatdb.Open(filepath.Join(dir, "state"), chatdb.Options{})
	require.NoError(t, err)
	state := chat.NewState(db.Store())
	sm := &recordingSM{StateMachine: server.NewStateMachine(state)}
	sh, err := shell.New(shell.Config{
		Node: replica.Config{ID: 0, Peers: []replica.NodeID{0}}, Log: log, StateMachine: sm,
		Transport: shell.NoTransport{}, TickInterval: time.Millisecond,
		SnapshotDir: filepath.Join(dir, snapshotSubdir), SnapshotEvery: every, RetainEvents: retain,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { assert.NoError(t, sh.Run(ctx)) })
	defer func() {
		cancel()
		wg.Wait()
		require.NoError(t, db.Close())
		require.NoError(t, log.Close())
	}()
	require.Eventually(t, func() bool { return sh.Status().Role == shell.RolePrimary }, 5*time.Second, time.Millisecond)

	env := chat.Env{Rand: rand.NewChaCha8([32]byte{3}), Argon: chat.ArgonParams{Time: 1, MemoryKiB: 64, Threads: 1}}
	now := int64(1_700_000_000_000_000_000)
	seqs := map[string]uint64{}
	do := func(client string, cmd chat.Command) {
		t.Helper()
		seqs[client]++
		now += 1_000_000_007
		env.Now = now
		env.NewMessageID = func() uint64 { return chat.MessageID(client, seqs[client]) }
		evs, err := chat.Decide(state, env, cmd)
		require.NoError(t, err)
		var recs []eventlog.Record
		for _, ev := range evs {
			typ, data, err := chat.EncodeEvent(ev)
			require.NoError(t, err)
			recs = append(recs, eventlog.Record{Type: typ, Data: data, ClientID: client, Seq: seqs[client], Time: now})
		}
		_, err = sh.Propose(t.Context(), recs)
		require.NoError(t, err)
	}
	uid := func(name string) uint64 {
		u, ok, err := state.User(name)
		require.NoError(t, err)
		require.True(t, ok, name)
		return u.ID
	}
	names := []string{"ann", "bob", "cid"}
	lastSent := map[string]uint64{}
	for _, name := range names {
		do("c-"+name, chat.Register{Name: name, Password: "pw"})
	}
	for i := range n {
		from, to := names[i%3], names[(i+1)%3]
		switch {
		case i%7 == 6 && lastSent[from] != 0:
			do("c-"+from, chat.DeleteMessages{UID: uid(from), IDs: []uint64{lastSent[from]}})
			lastSent[from] = 0
		case i%5 == 4:
			hist, err := state.Unread(uid(to), 10)
			require.NoError(t, err)
			if len(hist) > 0 {
				do("c-"+to, chat.Deliver{UID: uid(to), MessageIDs: []uint64{hist[0].ID}})
			}
		default:
			do("c-"+from, chat.Send{FromUID: uid(from), To: to, Body: fmt.Sprintf("message %d", i)})
			lastSent[from] = chat.MessageID("c-"+from, seqs["c-"+from])
		}
	}
	require.Eventually(t, func() bool { return log.First() > 1 }, 10*time.Second, time.Millisecond, "the log is compacted")
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return append([]eventlog.Record(nil), sm.recs...)
}

// uncompactedCopy writes recs into a bare log directory.
func uncompactedCopy(t *testing.T, recs []eventlog.Record) string {
	t.Helper()
	dir := t.TempDir()
	l, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
	require.NoError(t, err)
	require.NoError(t, l.Append(recs))
	require.NoError(t, l.Close())
	return dir
}

func TestRun_CompactedWithSnapshots(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	recs := compactedDir(t, dir, 20, 5, 80)
	full := uncompactedCopy(t, recs)
	l, err := eventlog.OpenBadger(filepath.Join(dir, logSubdir), eventlog.BadgerOptions{ReadOnly: true})
	require.NoError(t, err)
	first, last := l.First(), l.Last()
	require.NoError(t, l.Close())
	snaps, err := shell.Snapshots(filepath.Join(dir, snapshotSubdir))
	require.NoError(t, err)
	require.NotEmpty(t, snaps)
	require.Equal(t, last, eventlog.Offset(len(recs)), "every record was applied")
	var usable []shell.SnapshotFile
	for _, s := range snaps {
		if s.Offset+1 >= first {
			usable = append(usable, s)
		}
	}
	require.NotEmpty(t, usable, "a snapshot the log continues")
	oldest := usable[0]

	t.Run("events", func(t *testing.T) {
		out, errOut, err := replayOut(t, "--data", dir)
		require.NoError(t, err, errOut)
		offs := offsetsOf(t, out)
		require.NotEmpty(t, offs)
		assert.Equal(t, int(first), offs[0], "printed from the first retained offset")
		assert.Equal(t, int(last), offs[len(offs)-1])
		assert.Contains(t, errOut, fmt.Sprintf("it starts at offset %d", first))
		assert.Contains(t, errOut, oldest.Dir, "says where the snapshot is")
		// After the snapshot, events have names and results, as in a
		// replay of the whole log; before it, they cannot.
		fullOut, _, err := replayOut(t, "--data", full, "--from", fmt.Sprint(oldest.Offset+1))
		require.NoError(t, err)
		var after []string
		for line := range strings.Lines(out) {
			var off uint64
			fmt.Sscanf(line, "%d", &off)
			if off > uint64(oldest.Offset) {
				after = append(after, line)
			}
		}
		assert.Equal(t, fullOut, strings.Join(after, ""), "events after the snapshot print as from a full replay")
	})

	t.Run("json", func(t *testing.T) {
		out, errOut, err := replayOut(t, "--data", dir, "--json")
		require.NoError(t, err)
		assert.Contains(t, errOut, "is compacted", "the note is on stderr")
		for line := range strings.Lines(out) {
			var obj map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &obj), "one event object per line: %q", line)
			assert.Contains(t, obj, "offset")
			assert.Contains(t, obj, "type")
		}
	})

	t.Run("state equals replay from zero", func(t *testing.T) {
		// At every snapshot the log continues, and past them.
		ats := []eventlog.Offset{last}
		for _, s := range usable {
			ats = append(ats, s.Offset, min(s.Offset+3, last))
		}
		for _, at := range ats {
			for _, args := range [][]string{{"--json"}, {}} {
				want, _, err := replayOut(t, append([]string{"--data", full, "--state", "--to", fmt.Sprint(at)}, args...)...)
				require.NoError(t, err)
				got, errOut, err := replayOut(t, append([]string{"--data", dir, "--state", "--to", fmt.Sprint(at)}, args...)...)
				require.NoError(t, err, errOut)
				assert.Equal(t, want, got, "--state --to %d %v", at, args)
				assert.Contains(t, errOut, "the state is the snapshot at offset")
			}
		}
	})

	t.Run("state before the snapshot", func(t *testing.T) {
		_, errOut, err := replayOut(t, "--data", dir, "--state", "--to", fmt.Sprint(oldest.Offset-1))
		require.Error(t, err)
		assert.Equal(t, 1, exitCode(err))
		assert.Contains(t, errOut, fmt.Sprintf("its earliest snapshot covers offset %d", oldest.Offset))
		assert.Contains(t, errOut, fmt.Sprintf("the state is known from offset %d on", oldest.Offset))
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line")
	})

	t.Run("user", func(t *testing.T) {
		want, _, err := replayOut(t, "--data", full, "--user", "bob", "--from", fmt.Sprint(oldest.Offset+1))
		require.NoError(t, err)
		got, errOut, err := replayOut(t, "--data", dir, "--user", "bob")
		require.NoError(t, err, errOut)
		assert.NotEmpty(t, got)
		assert.Equal(t, want, got, "the events after the snapshot, attributed by the account it holds")
	})
}
