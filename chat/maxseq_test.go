package chat_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

func TestState_MaxSeq(t *testing.T) {
	seqRange := func(from, to uint64) []uint64 {
		var out []uint64
		for s := from; s <= to; s++ {
			out = append(out, s)
		}
		return out
	}
	tests := []struct {
		name string
		seqs []uint64 // applied in this order, one batch
		want uint64
	}{
		{"never seen", nil, 0},
		{"one", []uint64{7}, 7},
		{"out of order (pipelined requests)", []uint64{5, 2, 9, 3}, 9},
		{"a retry of a lower seq", []uint64{4, 8, 4}, 8},
		{"beyond the dedup window (results evicted)", seqRange(1, 400), 400},
		{"an evicted seq re-submitted last", append(seqRange(1, 400), 3), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, chat.NewMemStore())
			ann := h.register("ann")
			var recs []eventlog.Record
			for i, seq := range tt.seqs {
				recs = append(recs, h.record("bot", seq, &chat.SendEvent{MessageID: uint64(i + 1), FromUID: ann, ToUID: ann, Body: "x"}))
			}
			require.NoError(t, h.st.Apply(recs))
			got, err := h.st.MaxSeq("bot")
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			// The promise: nothing above it reads as applied.
			for seq := got + 1; seq <= got+300; seq++ {
				_, ok, err := h.st.Result("bot", seq)
				require.NoError(t, err)
				require.False(t, ok, "seq %d above MaxSeq %d reads as applied", seq, got)
			}
			other, err := h.st.MaxSeq("other")
			require.NoError(t, err)
			assert.Zero(t, other, "clients do not share bounds")
		})
	}
}

// viewFailStore fails every View once fail is set.
type viewFailStore struct {
	chat.Store
	fail error
}

func (s *viewFailStore) View(fn func(chat.KV) error) error {
	if s.fail != nil {
		return s.fail
	}
	return s.Store.View(fn)
}

func TestState_MaxSeq_StorageError(t *testing.T) {
	store := &viewFailStore{Store: chat.NewMemStore()}
	st := chat.NewState(store)
	boom := errors.New("disk on fire")
	store.fail = boom
	_, err := st.MaxSeq("bot")
	assert.ErrorIs(t, err, boom)
}
