package chat_test

// Goal: rolling the state back by its undo records is the same as never
// having applied what was undone. For random logs (sends, deliveries,
// deletions, seq gaps that leave dedup holes, idle expiry) and a random
// truncation point: apply log 1, roll back to the point, apply log 2 (the
// shared prefix, then a different suffix with re-submissions of log 1's
// truncated records) == applying log 2 to a fresh state, digest for digest,
// on MemStore and on Badger, across restarts. And a rollback the undo
// history cannot reach fails without changing anything.

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/eventlog"
)

// storeKinds runs fn on each Store implementation.
func storeKinds(t *testing.T, fn func(t *testing.T, open func() chat.Store)) {
	t.Run("Memory", func(t *testing.T) {
		fn(t, func() chat.Store { return chat.NewMemStore() })
	})
	t.Run("Badger", func(t *testing.T) {
		fn(t, func() chat.Store { return chatdb.New(openBadger(t)) })
	})
}

// gen decides steps random commands on h (applied as decided), as clients
// c0 and c1 whose seqs sometimes skip (requests lost before the log: dedup
// holes once the window passes them).
func gen(t *testing.T, h *harness, rng *rand.Rand, steps int, seqs map[string]uint64) {
	t.Helper()
	users := func() []chat.UserInfo {
		live, _, err := h.st.Users("*", "", 100)
		require.NoError(t, err)
		return live
	}
	uid := func() uint64 {
		live := users()
		if len(live) == 0 || rng.IntN(12) == 0 {
			return 1 + rng.Uint64N(20)
		}
		return live[rng.IntN(len(live))].ID
	}
	for range steps {
		client := fmt.Sprintf("c%d", rng.IntN(2))
		seqs[client] += 1 + uint64(rng.IntN(10)/9)
		seq := seqs[client]
		h.env.NewMessageID = func() uint64 { return chat.MessageID(client, seq) }
		var cmd chat.Command
		switch r := rng.IntN(100); {
		case r < 10:
			cmd = chat.Register{Name: fmt.Sprintf("u%d", rng.IntN(6)), Password: "pw"}
		case r < 70:
			cmd = chat.Send{FromUID: uid(), To: fmt.Sprintf("u%d", rng.IntN(6)), Body: strings.Repeat("b", 1+rng.IntN(30))}
		case r < 85:
			u := uid()
			unread, err := h.st.Unread(u, 3)
			require.NoError(t, err)
			if len(unread) == 0 {
				continue
			}
			cmd = chat.Deliver{UID: u, MessageIDs: ids(unread)}
		case r < 97:
			u := uid()
			msgs, _, err := h.st.History(u, "", 0, 3)
			require.NoError(t, err)
			if len(msgs) == 0 {
				continue
			}
			cmd = chat.DeleteMessages{UID: u, IDs: ids(msgs[:1+rng.IntN(len(msgs))])}
		default:
			cmd = chat.DeleteAccount{UID: uid()}
		}
		recs, err := h.decide(client, seq, cmd)
		if err != nil {
			require.NotEqual(t, chat.CodeInternal, chat.Code(err), "%v", err)
			continue
		}
		require.NoError(t, h.st.Apply(recs))
		if rng.IntN(200) == 0 {
			h.now += chat.DedupIdleNanos / 2 // idle clients expire
		}
	}
}

// applyInBatches applies recs to st in random batches, telling it the
// stable offset as it goes (never beyond maxStable); with restart, it
// sometimes reopens the state on its store.
func applyInBatches(t *testing.T, st *chat.State, store chat.Store, recs []eventlog.Record, rng *rand.Rand, maxStable eventlog.Offset) *chat.State {
	t.Helper()
	for len(recs) > 0 {
		n := min(1+rng.IntN(12), len(recs))
		require.NoError(t, st.Apply(recs[:n]))
		recs = recs[n:]
		if rng.IntN(4) == 0 {
			st.SetStable(min(maxStable, eventlog.Offset(rng.Uint64N(uint64(st.Applied())+1))))
		}
		if rng.IntN(30) == 0 {
			st = chat.NewState(store)
			require.NoError(t, st.LoadErr())
		}
	}
	return st
}

func TestState_RollbackTo_Random(t *testing.T) {
	storeKinds(t, func(t *testing.T, open func() chat.Store) {
		for seed := uint64(1); seed <= 3; seed++ {
			t.Run(fmt.Sprint(seed), func(t *testing.T) {
				runRollback(t, seed, open)
			})
		}
	})
}

func runRollback(t *testing.T, seed uint64, open func() chat.Store) {
	rng := rand.New(rand.NewPCG(seed, 0xf0c4))
	// Log 1: what this replica applied before the fork was found.
	h1 := newHarness(t, chat.NewMemStore())
	seqs1 := map[string]uint64{}
	gen(t, h1, rng, 1200, seqs1) // enough for each client's window to evict: holes
	log1 := h1.recs
	cut := eventlog.Offset(len(log1) - rng.IntN(len(log1)/2+1)) // at least half applied: the window moved

	// Log 2: the winning side's, sharing log 1 up to cut, then its own
	// requests and re-submissions of the records log 1 had after cut.
	h2 := newHarness(t, chat.NewMemStore())
	h2.now = h1.now
	h2.recs = slices.Clone(log1[:cut])
	require.NoError(t, h2.st.Apply(h2.recs))
	seqs2 := map[string]uint64{}
	for _, r := range h2.recs {
		seqs2[r.ClientID] = max(seqs2[r.ClientID], r.Seq)
	}
	seqs2["c0"] += 30 // the clients went on, on the other side
	gen(t, h2, rng, 200, seqs2)
	for _, r := range log1[cut:] {
		if r.ClientID == "" || rng.IntN(3) == 0 {
			continue
		}
		r.OrigEpoch, r.OrigOffset = r.Epoch, r.Offset
		r.Epoch, r.Offset = 2, eventlog.Offset(len(h2.recs)+1)
		h2.recs = append(h2.recs, r)
		require.NoError(t, h2.st.Apply([]eventlog.Record{r}))
	}
	gen(t, h2, rng, 50, seqs2)
	log2 := h2.recs

	store := open()
	st := chat.NewState(store)
	st.SetStable(0)
	st = applyInBatches(t, st, store, log1, rng, cut)
	require.Equal(t, eventlog.Offset(len(log1)), st.Applied())

	got, err := st.RollbackTo(cut)
	require.NoError(t, err, "cut %d of %d", cut, len(log1))
	require.LessOrEqual(t, got, cut)
	require.Equal(t, got, st.Applied())
	require.NoError(t, st.Check())
	assert.Equal(t, digest(t, replay(t, log1[:got], 5)), digest(t, st), "rolled back to %d", got)

	// The caller re-applies from the log, after got.
	st = applyInBatches(t, st, store, log2[got:], rng, eventlog.Offset(len(log2)))
	require.NoError(t, st.Check())
	assert.Equal(t, digest(t, replay(t, log2, 9)), digest(t, st), "cut %d, rolled back to %d", cut, got)
}

func TestState_RollbackTo_Unreachable(t *testing.T) {
	storeKinds(t, func(t *testing.T, open func() chat.Store) {
		h := newHarness(t, chat.NewMemStore())
		runScript(t, h)
		n := eventlog.Offset(len(h.recs))

		noUndo := func(name string, prepare func(st *chat.State) eventlog.Offset) {
			t.Run(name, func(t *testing.T) {
				st := chat.NewState(open())
				after := prepare(st)
				before := digest(t, st)
				applied := st.Applied()
				got, err := st.RollbackTo(after)
				require.ErrorIs(t, err, chat.ErrUndoUnavailable)
				assert.Equal(t, applied, got)
				assert.Equal(t, applied, st.Applied(), "nothing undone")
				assert.Equal(t, before, digest(t, st))
				require.NoError(t, st.Check())
				// The fallback: reset and replay.
				require.NoError(t, st.RestoreSnapshot(emptySnapshot(t)))
				require.NoError(t, st.Apply(h.recs[:after]))
				assert.Equal(t, digest(t, replay(t, h.recs[:after], 3)), digest(t, st))
			})
		}
		noUndo("never told the stable offset", func(st *chat.State) eventlog.Offset {
			require.NoError(t, st.Apply(h.recs))
			return n / 2
		})
		noUndo("applied at or below the stable offset", func(st *chat.State) eventlog.Offset {
			st.SetStable(n - 3)
			for i := range h.recs {
				require.NoError(t, st.Apply(h.recs[i:i+1]))
			}
			return n - 5 // below stable: no undo
		})
		noUndo("restored from a snapshot since", func(st *chat.State) eventlog.Offset {
			st.SetStable(0)
			require.NoError(t, st.Apply(h.recs))
			var snap strings.Builder
			require.NoError(t, snapErr(replay(t, h.recs, 4).WriteSnapshot(&snap)))
			require.NoError(t, st.RestoreSnapshot(strings.NewReader(snap.String())))
			return n - 1
		})

		t.Run("nothing to undo", func(t *testing.T) {
			st := chat.NewState(open())
			require.NoError(t, st.Apply(h.recs))
			got, err := st.RollbackTo(n + 5)
			require.NoError(t, err)
			assert.Equal(t, n, got)
		})
		t.Run("within reach after a batch without undo", func(t *testing.T) {
			// Batches ending at or below stable record nothing; those
			// after do, and a rollback above stable needs only them.
			st := chat.NewState(open())
			st.SetStable(n / 2)
			for i := range h.recs {
				require.NoError(t, st.Apply(h.recs[i:i+1]))
			}
			got, err := st.RollbackTo(n/2 + 1)
			require.NoError(t, err)
			assert.Equal(t, n/2+1, got)
			assert.Equal(t, digest(t, replay(t, h.recs[:got], 2)), digest(t, st))
		})
	})
}

func emptySnapshot(t *testing.T) *strings.Reader {
	var b strings.Builder
	require.NoError(t, snapErr(chat.NewState(chat.NewMemStore()).WriteSnapshot(&b)))
	return strings.NewReader(b.String())
}
