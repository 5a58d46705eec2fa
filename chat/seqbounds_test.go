package chat_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

// Apply skips the dedup read of requests above what it knows a client has
// applied; these check that duplicates are still caught wherever that
// knowledge could be stale.

// sendRec is a send from ann to herself as request (client, seq).
func sendRec(h *harness, ann uint64, client string, seq uint64) eventlog.Record {
	h.nextID++
	return h.record(client, seq, &chat.SendEvent{MessageID: h.nextID, FromUID: ann, ToUID: ann, Body: "x"})
}

func countMessages(t *testing.T, st *chat.State, uid uint64) int {
	t.Helper()
	msgs, err := st.Unread(uid, chat.MaxQueryLimit)
	require.NoError(t, err)
	return len(msgs)
}

func TestState_Apply_DuplicatesBelowBound(t *testing.T) {
	tests := []struct {
		name    string
		batches [][]uint64 // seqs of "bot", each inner slice one Apply
		want    int        // messages applied
	}{
		{"retry in the same batch", [][]uint64{{1, 2, 1}}, 2},
		{"retry in a later batch", [][]uint64{{1, 2}, {2}, {1}}, 2},
		{"pipelined: a lower seq arrives late, then its retry", [][]uint64{{5}, {3}, {3, 5}}, 2},
		{"out of order in one batch", [][]uint64{{4, 2, 3, 2, 4}}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, chat.NewMemStore())
			ann := h.register("ann")
			for _, seqs := range tt.batches {
				var recs []eventlog.Record
				for _, seq := range seqs {
					recs = append(recs, sendRec(h, ann, "bot", seq))
				}
				require.NoError(t, h.st.Apply(recs))
			}
			assert.Equal(t, tt.want, countMessages(t, h.st, ann))
			require.NoError(t, h.st.Check())
		})
	}
}

func TestState_Apply_DuplicatesAfterRestart(t *testing.T) {
	store := chat.NewMemStore()
	h := newHarness(t, store)
	ann := h.register("ann")
	require.NoError(t, h.st.Apply([]eventlog.Record{sendRec(h, ann, "bot", 1), sendRec(h, ann, "bot", 7)}))
	// A new State over the same store (a restart) learns the bound anew.
	st := chat.NewState(store)
	require.NoError(t, st.Apply([]eventlog.Record{sendRec(h, ann, "bot", 7), sendRec(h, ann, "bot", 1), sendRec(h, ann, "bot", 8)}))
	assert.Equal(t, 3, countMessages(t, st, ann))
}

func TestState_Apply_DuplicatesAfterRestore(t *testing.T) {
	// The donor applied bot's seqs 1-10; the receiver only 1-3, so it
	// knows a bound of 3 for bot until the snapshot replaces its state.
	donor := newHarness(t, chat.NewMemStore())
	ann := donor.register("ann")
	var recs []eventlog.Record
	for seq := uint64(1); seq <= 10; seq++ {
		recs = append(recs, sendRec(donor, ann, "bot", seq))
	}
	require.NoError(t, donor.st.Apply(recs))
	var snap bytes.Buffer
	require.NoError(t, snapErr(donor.st.WriteSnapshot(&snap)))

	receiver := chat.NewState(chat.NewMemStore())
	require.NoError(t, receiver.Apply(donor.recs[:4])) // register, seqs 1-3
	require.NoError(t, receiver.RestoreSnapshot(&snap))

	retry := sendRec(donor, ann, "bot", 7)
	require.NoError(t, receiver.Apply([]eventlog.Record{retry}))
	assert.Equal(t, 10, countMessages(t, receiver, ann), "the retry of seq 7 is a duplicate")
	// A new send rewrites ann's record, which the receiver read (with 3
	// messages) before the restore: it must count from the snapshot's.
	require.NoError(t, receiver.Apply([]eventlog.Record{sendRec(donor, ann, "bot", 11)}))
	assert.Equal(t, 11, countMessages(t, receiver, ann))
	require.NoError(t, receiver.Check())
}
