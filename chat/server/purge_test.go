package server

// Goal: once the log's floor passes the batch that deleted a message (both
// of its views) or an account, the purger drops the undo records that held
// the deleted values and purges the state's database, and neither the
// message's body nor the account's name is left in any file of the state's
// directory, while a message not deleted is still found there by the same
// search (the positive control). Before the floor passes, or while purges
// are held (a disk below its reserve), nothing is purged.

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/bench/datafiles"
	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/eventlog"
)

// filesWith returns, for each needle, the files under dir that hold it.
func filesWith(t *testing.T, dir string, needles ...string) map[string][]string {
	t.Helper()
	found, err := datafiles.Holding([]string{dir}, needles...)
	require.NoError(t, err)
	return found
}

func TestStateMachine_PurgeAfterTheFloorPasses(t *testing.T) {
	dir := t.TempDir()
	db, err := chatdb.Open(dir, chatdb.Options{MemTableSize: 1 << 20})
	require.NoError(t, err)
	defer db.Close()
	sm := NewStateMachine(chat.NewState(db.Store()))
	sm.SetStable(1) // undo records for every batch, as on a replica whose peer is down

	var floor atomic.Uint64
	var purges atomic.Int64
	var hold atomic.Bool
	sm.EnablePurge(PurgeConfig{
		Floor: func() eventlog.Offset { return eventlog.Offset(floor.Load()) },
		Purge: func(ctx context.Context) error {
			defer purges.Add(1)
			return db.Purge(ctx)
		},
		Hold:  hold.Load,
		Every: 5 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { assert.NoError(t, sm.RunPurge(ctx)) })
	defer func() { cancel(); wg.Wait() }()

	rng := rand.New(rand.NewPCG(7, 8))
	carol := "carol"
	for range 12 {
		carol += string(rune('a' + rng.IntN(26)))
	}
	gone, kept, carols := "gone-"+datafiles.RandomText(rng, 60), "kept-"+datafiles.RandomText(rng, 60), "carol-"+datafiles.RandomText(rng, 60)
	l := &recLog{t: t}
	l.register("ann") // uid 1
	l.register("bob") // uid 2
	l.register(carol) // uid 3
	apply := func(from int) {
		t.Helper()
		require.NoError(t, sm.Apply(l.recs[from:]))
	}
	l.add("ann", 1, &chat.SendEvent{MessageID: 1001, FromUID: 1, ToUID: 2, Body: gone})
	l.add("ann", 2, &chat.SendEvent{MessageID: 1002, FromUID: 1, ToUID: 2, Body: kept})
	l.add("carol", 1, &chat.SendEvent{MessageID: 1003, FromUID: 3, ToUID: 2, Body: carols})
	apply(0)
	n := len(l.recs)
	l.add("ann", 3, &chat.DeleteMessagesEvent{UID: 1, IDs: []uint64{1001}})
	l.add("bob", 1, &chat.DeleteMessagesEvent{UID: 2, IDs: []uint64{1001, 1003}})
	l.add("carol", 2, &chat.DeleteAccountEvent{UID: 3})
	apply(n)
	deleted := l.recs[len(l.recs)-1].Offset
	for i := range 20 { // later traffic
		l.send("bob", uint64(2+i), 2, 1)
	}
	apply(len(l.recs) - 20)
	require.NoError(t, db.Sync())

	gone, kept, carols, carol = datafiles.Mid(gone), datafiles.Mid(kept), datafiles.Mid(carols), datafiles.Mid(carol)
	before := filesWith(t, dir, gone, carols, carol)
	for _, needle := range []string{gone, carols, carol} {
		require.NotEmpty(t, before[needle], "before the purge %q is on disk (else this test proves nothing)", needle[:8])
	}
	floor.Store(uint64(deleted) - 1)
	time.Sleep(100 * time.Millisecond)
	assert.Zero(t, purges.Load(), "the floor is below the delete: nothing purged")

	hold.Store(true) // the disk below its reserve
	floor.Store(uint64(deleted))
	time.Sleep(100 * time.Millisecond)
	assert.Zero(t, purges.Load(), "held: nothing purged")
	hold.Store(false)
	require.Eventually(t, func() bool { return purges.Load() > 0 }, 10*time.Second, 5*time.Millisecond)
	found := filesWith(t, dir, gone, carols, carol, kept)
	assert.Empty(t, found[gone], "the deleted message is gone")
	assert.Empty(t, found[carols], "the deleted account's message is gone")
	assert.Empty(t, found[carol], "the deleted account's name is gone")
	assert.NotEmpty(t, found[kept], "a message not deleted is still found (positive control)")
	st := sm.state
	m, _, err := st.History(1, "", 0, 10)
	require.NoError(t, err)
	require.NotEmpty(t, m)
	require.NoError(t, st.Check())
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, int64(1), purges.Load(), "one purge covers every delete at or below the floor")
}
