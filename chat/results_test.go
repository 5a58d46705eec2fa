package chat_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

// ApplyWithResults must report every client record it meets, in offset
// order: for a request it applied, exactly what Result reads back
// afterwards; for a duplicate, that it was skipped.
func TestState_ApplyWithResults(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	runScript(t, h)
	// Add a duplicate of an applied request and a request that fails.
	dup := h.recs[len(h.recs)-3] // register cy again: the last client request
	dup.Offset = eventlog.Offset(len(h.recs) + 1)
	h.recs = append(h.recs, dup)
	h.record("late", 1, &chat.SendEvent{MessageID: 999999, FromUID: 12345, ToUID: 1, Body: "x"})

	tests := []struct {
		name  string
		store func() chat.Store
		split bool
	}{
		{"one transaction", func() chat.Store { return chat.NewMemStore() }, false},
		{"split batches", func() chat.Store { return &txnLimitStore{Store: chat.NewMemStore(), limit: 40} }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := tt.store()
			st := chat.NewState(store)
			results, err := st.ApplyWithResults(h.recs)
			require.NoError(t, err)
			if ls, ok := store.(*txnLimitStore); ok {
				require.Positive(t, ls.refused, "the batch had to be split")
			}

			var want []chat.AppliedResult
			seen := map[[2]any]bool{}
			for _, r := range h.recs {
				k := [2]any{r.ClientID, r.Seq}
				if r.ClientID == "" {
					continue // protocol records have no outcome
				}
				if seen[k] {
					want = append(want, chat.AppliedResult{Offset: r.Offset, ClientID: r.ClientID, Seq: r.Seq, Outcome: chat.OutcomeDuplicate})
					continue
				}
				seen[k] = true
				res, ok, err := st.Result(r.ClientID, r.Seq)
				require.NoError(t, err)
				require.True(t, ok)
				o := chat.OutcomeApplied
				if res.Code != "" {
					o = chat.OutcomeRejected
				}
				want = append(want, chat.AppliedResult{Offset: r.Offset, ClientID: r.ClientID, Seq: r.Seq, Outcome: o, Result: res})
			}
			assert.Equal(t, want, results)
			dupe := results[len(results)-2]
			assert.Equal(t, chat.OutcomeDuplicate, dupe.Outcome, "the copy of an applied request")
			last := results[len(results)-1]
			assert.Equal(t, "late", last.ClientID)
			assert.Equal(t, chat.OutcomeRejected, last.Outcome)
			assert.Error(t, last.Result.Err(), "a rejected request's result is its error")

			again, err := st.ApplyWithResults(h.recs)
			require.NoError(t, err)
			assert.Empty(t, again, "records already applied store nothing")
		})
	}
}

func TestState_ApplyWithResults_Errors(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	runScript(t, h)
	// A record too big for one transaction (a send, at this limit) fails
	// after the smaller ones before it committed in split batches: their
	// results come back with the error.
	store := &txnLimitStore{Store: chat.NewMemStore(), limit: 10}
	st := chat.NewState(store)
	results, err := st.ApplyWithResults(h.recs)
	require.ErrorIs(t, err, chat.ErrTxnTooBig)
	require.NotEmpty(t, results)
	for _, r := range results {
		if r.Outcome == chat.OutcomeDuplicate {
			continue
		}
		res, ok, err := st.Result(r.ClientID, r.Seq)
		require.NoError(t, err)
		require.True(t, ok, "a returned result was committed")
		assert.Equal(t, res, r.Result)
	}

	// A gap.
	st = chat.NewState(chat.NewMemStore())
	results, err = st.ApplyWithResults(h.recs[1:])
	var gap *chat.GapError
	assert.ErrorAs(t, err, &gap)
	assert.Empty(t, results)
}
