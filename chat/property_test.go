package chat_test

// Goal: random command sequences (seeded, reproducible), with retries and
// re-submissions of earlier requests, keep every invariant Check knows, and
// the same log applied to a MemStore and to Badger (chatdb), in different
// batchings and across restarts, gives byte-identical states.

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/eventlog"
)

var (
	propSeed  = flag.Uint64("seed", 0, "run TestState_Random with only this seed")
	propSteps = flag.Int("steps", 1000, "steps per seed of TestState_Random")
)

func openBadger(t testing.TB) *badger.DB {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

func TestState_Random(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5}
	if *propSeed != 0 {
		seeds = []uint64{*propSeed}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("reproduce: go test ./chat -run TestState_Random -seed=%d -steps=%d", seed, *propSteps)
				}
			}()
			runRandom(t, seed, *propSteps)
		})
	}
}

func runRandom(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 0xc4a7))
	h := newHarness(t, chat.NewMemStore())
	db := openBadger(t)
	store := chatdb.New(db)
	follower := chat.NewState(store)
	seqs := map[string]uint64{}
	uid := func() uint64 {
		live, _, err := h.st.Users("*", "", 100)
		require.NoError(t, err)
		if len(live) == 0 || rng.IntN(10) == 0 {
			return rng.Uint64N(h.nextUIDGuess() + 2)
		}
		return live[rng.IntN(len(live))].ID
	}
	name := func() string { return fmt.Sprintf("u%d", rng.IntN(8)) }
	someIDs := func(user uint64) []uint64 {
		var out []uint64
		msgs, _, err := h.st.History(user, "", 0, 50)
		require.NoError(t, err)
		for _, m := range msgs {
			if rng.IntN(3) == 0 {
				out = append(out, m.ID)
			}
		}
		if rng.IntN(5) == 0 {
			out = append(out, rng.Uint64N(h.nextID+3))
		}
		return out
	}
	command := func() chat.Command {
		switch r := rng.IntN(100); {
		case r < 12:
			return chat.Register{Name: name(), Password: "pw"}
		case r < 60:
			body := strings.Repeat("x", rng.IntN(20))
			if rng.IntN(20) == 0 {
				body = strings.Repeat("y", chat.MaxBodyBytes+1)
			}
			return chat.Send{FromUID: uid(), To: name(), Body: body}
		case r < 75:
			user := uid()
			unread, err := h.st.Unread(max(user, 1), 5)
			require.NoError(t, err)
			return chat.Deliver{UID: user, MessageIDs: append(ids(unread), someIDs(user)...)}
		case r < 97:
			user := uid()
			return chat.DeleteMessages{UID: user, IDs: someIDs(user)}
		default:
			return chat.DeleteAccount{UID: uid()}
		}
	}
	var pending []eventlog.Record // decided, not yet applied by the primary
	refused := map[string]int{}
	for step := range steps {
		client := fmt.Sprintf("c%d", rng.IntN(4))
		seqs[client]++
		recs, err := h.decide(client, seqs[client], command())
		if err == nil {
			pending = append(pending, recs...)
		} else {
			refused[chat.Code(err)]++
			require.NotEqual(t, chat.CodeInternal, chat.Code(err), "step %d: %v", step, err)
		}
		switch r := rng.IntN(60); {
		case r < 4 && len(h.recs) > 0: // a retry of an earlier request
			old := h.recs[rng.IntN(len(h.recs))]
			if old.ClientID != "" {
				if rng.IntN(2) == 0 { // re-submitted after a fork
					old.OrigEpoch, old.OrigOffset = old.Epoch, old.Offset
				}
				old.Offset = eventlog.Offset(len(h.recs) + 1)
				h.recs = append(h.recs, old)
				pending = append(pending, old)
			}
		case r < 6: // a protocol event
			rec := eventlog.Record{Offset: eventlog.Offset(len(h.recs) + 1), Epoch: 1, Type: "replica.noop", Time: h.now}
			h.recs = append(h.recs, rec)
			pending = append(pending, rec)
		case r == 6: // time passes: idle clients expire
			h.now += chat.DedupIdleNanos / 3
		}
		// Sometimes decide the next command on stale state (concurrency).
		if rng.IntN(3) != 0 {
			require.NoError(t, h.st.Apply(pending), "step %d", step)
			pending = nil
		}
		if rng.IntN(10) == 0 { // the follower catches up in one batch
			require.NoError(t, follower.Apply(h.recs[follower.Applied():]))
		}
		if rng.IntN(50) == 0 { // the follower restarts
			follower = chat.NewState(store)
		}
	}
	require.NoError(t, h.st.Apply(pending))
	for follower.Applied() < eventlog.Offset(len(h.recs)) {
		n := min(int(follower.Applied())+1+rng.IntN(7), len(h.recs))
		require.NoError(t, follower.Apply(h.recs[follower.Applied():n]))
	}
	require.NoError(t, h.st.Check())
	require.NoError(t, follower.Check())
	stats := map[string]int{}
	for _, r := range h.recs {
		res, ok, err := h.st.Result(r.ClientID, r.Seq)
		require.NoError(t, err)
		stats[fmt.Sprintf("%s:%v:%s", r.Type, ok, res.Code)]++
	}
	t.Logf("applied: %v", stats)
	t.Logf("refused by Decide: %v", refused)
	assert.Equal(t, digest(t, h.st), digest(t, follower), "MemStore and chatdb diverge")
	assert.Equal(t, digest(t, h.st), digest(t, replay(t, h.recs, 1+rng.IntN(9))))
}

// nextUIDGuess is an upper bound of the user ids handed out so far.
func (h *harness) nextUIDGuess() uint64 {
	var n uint64
	for _, r := range h.recs {
		if r.Type == chat.TypeRegister {
			n++
		}
	}
	return n
}
