package chat_test

// Goal: a message id is a fixed function of (client id, seq), within 53 bits
// and never 0, so that both sides of a fork assign a retried send the same
// id; Apply stores a send under its event's id, probing deterministically
// past a taken one and telling the sender the id stored; and logs whose ids
// were minted from epochs replay under exactly those ids.

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

func TestMessageID(t *testing.T) {
	// Pinned: the ids are part of the replicated state and of what
	// clients were told; changing the function changes both. (Computed
	// independently: FNV-1a 64 of the id and the big-endian seq,
	// splitmix64's finalizer, the low 53 bits.)
	for _, tc := range []struct {
		client string
		seq    uint64
		want   uint64
	}{
		{"client-1", 1, 8462136993830038},
		{"client-1", 2, 6565879730948239},
		{"", 0, 8727324727344147},
	} {
		assert.Equal(t, tc.want, chat.MessageID(tc.client, tc.seq), "%q/%d", tc.client, tc.seq)
	}
	seen := make(map[uint64]string)
	for c := range 8 {
		for seq := range uint64(2500) {
			client := fmt.Sprintf("c%d", c)
			id := chat.MessageID(client, seq)
			require.NotZero(t, id)
			require.Less(t, id, uint64(1)<<53, "JSON-safe")
			k := fmt.Sprintf("%s/%d", client, seq)
			if other, dup := seen[id]; dup {
				t.Fatalf("%s and %s collide", k, other)
			}
			seen[id] = k
		}
	}
}

func TestApplySend_ProbesPastATakenID(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	ann := h.register("ann")
	id := chat.MessageID("c", 1)
	// Another message holds the id already (a collision, or an old id).
	first := h.record("x", 1, &chat.SendEvent{MessageID: id, FromUID: ann, ToUID: ann, Body: "first"})
	second := h.record("c", 1, &chat.SendEvent{MessageID: id, FromUID: ann, ToUID: ann, Body: "second"})
	results, err := h.st.ApplyWithResults([]eventlog.Record{first, second})
	require.NoError(t, err)
	require.Len(t, results, 2)
	assert.Equal(t, id, results[0].Result.MessageID)
	probed := results[1].Result.MessageID
	assert.Equal(t, chat.OutcomeApplied, results[1].Outcome)
	assert.NotEqual(t, id, probed, "stored under another id")
	res, ok, err := h.st.Result("c", 1)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, probed, res.MessageID, "the sender is told the id stored")
	m, ok, err := h.st.Message(probed)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "second", m.Body)
	require.NoError(t, h.st.Check())
	// Deterministic: a replica replaying the log probes to the same id.
	assert.Equal(t, digest(t, h.st), digest(t, replay(t, h.recs, 1)))
}

func TestApplySend_EpochMintedIDsReplayUnchanged(t *testing.T) {
	// Logs written before ids were derived hold epoch<<32|n ids.
	h := newHarness(t, chat.NewMemStore())
	ann := h.register("ann")
	bob := h.register("bob")
	var ids []uint64
	for epoch := uint64(1); epoch <= 3; epoch++ {
		for n := uint64(1); n <= 3; n++ {
			id := epoch<<32 | n
			ids = append(ids, id)
			h.record("c", uint64(len(h.recs)+1), &chat.SendEvent{MessageID: id, FromUID: ann, ToUID: bob, Body: fmt.Sprint(id)})
		}
	}
	st := replay(t, h.recs, 4)
	for _, id := range ids {
		m, ok, err := st.Message(id)
		require.NoError(t, err)
		require.True(t, ok, "message %d", id)
		assert.Equal(t, fmt.Sprint(id), m.Body)
	}
	require.NoError(t, st.Check())
}
