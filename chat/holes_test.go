package chat_test

// Goal: after a fork, a re-submitted record whose seq the dedup window has
// passed without applying it (a hole) is applied, not dropped as a
// duplicate, and exactly once; an applied seq below the window stays a
// duplicate; Result and MaxSeq tell holes from applied seqs; and where the
// table forgot (below HoleFloor), a live request is refused while a
// re-submission is applied, a send deduplicated by its message id.

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

// forkLog is the log of the side that won a fork: client "c" sent seqs
// 1..n to ann, except those in lost (applied on the losing side only).
func forkLog(t *testing.T, n uint64, lost func(seq uint64) bool) (*harness, uint64) {
	h := newHarness(t, chat.NewMemStore())
	ann := h.register("ann")
	for seq := uint64(1); seq <= n; seq++ {
		if !lost(seq) {
			h.record("c", seq, &chat.SendEvent{MessageID: chat.MessageID("c", seq), FromUID: ann, ToUID: ann, Body: fmt.Sprint("m", seq)})
		}
	}
	require.NoError(t, h.st.Apply(h.recs))
	return h, ann
}

// resubmit appends the re-submission of the send of (c, seq), as the
// losing side's replica truncated it from offset orig.
func resubmit(h *harness, ann, seq uint64, orig eventlog.Offset) eventlog.Record {
	rec := h.record("c", seq, &chat.SendEvent{MessageID: chat.MessageID("c", seq), FromUID: ann, ToUID: ann, Body: fmt.Sprint("m", seq)})
	rec.OrigEpoch, rec.OrigOffset = 2, orig
	h.recs[len(h.recs)-1] = rec
	return rec
}

func TestDedup_ResubmissionIntoAHoleIsApplied(t *testing.T) {
	lost := func(seq uint64) bool { return seq >= 101 && seq <= 120 }
	h, ann := forkLog(t, 1000, lost) // the window passed 101-120 long ago
	require.NoError(t, h.st.Check())
	for seq := uint64(101); seq <= 120; seq++ {
		_, ok, err := h.st.Result("c", seq)
		require.NoError(t, err)
		require.False(t, ok, "seq %d in a hole reads as applied", seq)
	}
	res, ok, err := h.st.Result("c", 50)
	require.NoError(t, err)
	require.True(t, ok)
	assert.ErrorIs(t, res.Err(), chat.ErrExpiredRequest, "an applied seq below the window")
	bound, err := h.st.MaxSeq("c")
	require.NoError(t, err)
	assert.Equal(t, uint64(1000), bound)

	// Re-submitted out of order, as truncated copies may be: 110 first
	// splits the hole.
	var recs []eventlog.Record
	for _, seq := range []uint64{110, 101, 120, 102, 119, 111, 103, 104, 105, 106, 107, 108, 109, 112, 113, 114, 115, 116, 117, 118} {
		recs = append(recs, resubmit(h, ann, seq, eventlog.Offset(seq)))
	}
	results, err := h.st.ApplyWithResults(recs)
	require.NoError(t, err)
	require.Len(t, results, len(recs))
	for _, r := range results {
		assert.Equal(t, chat.OutcomeApplied, r.Outcome, "seq %d", r.Seq)
		assert.True(t, r.Resubmitted)
		assert.False(t, r.Unknown, "a hole is known")
		assert.Equal(t, chat.MessageID("c", r.Seq), r.Result.MessageID)
	}
	require.NoError(t, h.st.Check())
	assert.Equal(t, 1000, countMessages(t, h.st, ann), "every send present once")

	// Filled: a second copy (a second re-submission, a live retry) is a
	// duplicate, and Result no longer calls the seq a hole.
	again, err := h.st.ApplyWithResults([]eventlog.Record{resubmit(h, ann, 110, 9), resubmit(h, ann, 50, 9)})
	require.NoError(t, err)
	for _, r := range again {
		assert.Equal(t, chat.OutcomeDuplicate, r.Outcome, "seq %d", r.Seq)
	}
	res, ok, err = h.st.Result("c", 110)
	require.NoError(t, err)
	require.True(t, ok, "a filled hole reads as applied")
	assert.ErrorIs(t, res.Err(), chat.ErrExpiredRequest)
	assert.Equal(t, 1000, countMessages(t, h.st, ann))
	require.NoError(t, h.st.Check())

	// The same log replayed in other batchings gives the same state.
	assert.Equal(t, digest(t, h.st), digest(t, replay(t, h.recs, 7)))
}

func TestDedup_ResubmissionBeforeAndAfterTheWindow(t *testing.T) {
	// Seq 5 was lost and is re-submitted while still above Floor (the
	// window has not passed it): applied as a new request, its result
	// stored; later the window passes it without a hole.
	h, ann := forkLog(t, 10, func(seq uint64) bool { return seq == 5 })
	results, err := h.st.ApplyWithResults([]eventlog.Record{resubmit(h, ann, 5, 5)})
	require.NoError(t, err)
	require.Len(t, results, 1)
	assert.Equal(t, chat.OutcomeApplied, results[0].Outcome)
	res, ok, err := h.st.Result("c", 5)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, results[0].Result, res)
	for seq := uint64(11); seq <= 400; seq++ {
		h.record("c", seq, &chat.SendEvent{MessageID: chat.MessageID("c", seq), FromUID: ann, ToUID: ann, Body: "x"})
	}
	require.NoError(t, h.st.Apply(h.recs[h.st.Applied():]))
	dup, err := h.st.ApplyWithResults([]eventlog.Record{resubmit(h, ann, 5, 5)})
	require.NoError(t, err)
	assert.Equal(t, chat.OutcomeDuplicate, dup[0].Outcome, "applied before the window passed it: no hole")
	require.NoError(t, h.st.Check())
}

func TestDedup_LiveRequestIntoAHole(t *testing.T) {
	// A request Decide refused leaves a hole too (nothing was proposed);
	// a retry of that seq that applies fills it, once.
	h, ann := forkLog(t, 400, func(seq uint64) bool { return seq == 7 })
	rec := h.record("c", 7, &chat.SendEvent{MessageID: chat.MessageID("c", 7), FromUID: ann, ToUID: ann, Body: "late"})
	results, err := h.st.ApplyWithResults([]eventlog.Record{rec, h.record("c", 7, &chat.SendEvent{MessageID: 1, FromUID: ann, ToUID: ann, Body: "dup"})})
	require.NoError(t, err)
	require.Len(t, results, 2)
	assert.Equal(t, chat.OutcomeApplied, results[0].Outcome)
	assert.False(t, results[0].Resubmitted)
	assert.Equal(t, chat.OutcomeDuplicate, results[1].Outcome)
	assert.Equal(t, 400, countMessages(t, h.st, ann))
	require.NoError(t, h.st.Check())
}

func TestDedup_RejectedResubmission(t *testing.T) {
	// The recipient was deleted on the winning side: the re-submitted send
	// is applied as a rejection, visible as such.
	h, ann := forkLog(t, 400, func(seq uint64) bool { return seq == 9 })
	bob := h.register("bob")
	_, err := h.exec("admin", 1, chat.DeleteAccount{UID: bob})
	require.NoError(t, err)
	rec := h.record("c", 9, &chat.SendEvent{MessageID: chat.MessageID("c", 9), FromUID: ann, ToUID: bob, Body: "to bob"})
	rec.OrigEpoch, rec.OrigOffset = 3, 77
	h.recs[len(h.recs)-1] = rec
	results, err := h.st.ApplyWithResults([]eventlog.Record{rec})
	require.NoError(t, err)
	require.Len(t, results, 1)
	r := results[0]
	assert.Equal(t, chat.OutcomeRejected, r.Outcome)
	assert.Equal(t, "unknown_user", r.Result.Code)
	assert.True(t, r.Resubmitted)
	assert.Equal(t, eventlog.Epoch(3), r.OrigEpoch)
	assert.Equal(t, eventlog.Offset(77), r.OrigOffset)
	require.NoError(t, h.st.Check())
}
