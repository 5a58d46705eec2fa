package chat_test

// Goal: DropUndoThrough drops exactly the undo records of the batches at or
// below its offset (a rollback there is refused afterwards, one above still
// works and matches a replay), on both stores; PurgeBacklog counts the
// deleted accounts whose views are still being removed.

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

func TestState_DropUndoThrough(t *testing.T) {
	storeKinds(t, func(t *testing.T, open func() chat.Store) {
		h := newHarness(t, open())
		h.st.SetStable(0) // record undo for every batch
		ann, bob := h.register("ann"), h.register("bob")
		var mids []uint64
		for range 6 {
			mids = append(mids, h.send(ann, "bob", "x"))
		}
		_, err := h.exec("c", uint64(len(h.recs)+1), chat.DeleteMessages{UID: ann, IDs: mids[:2]})
		require.NoError(t, err)
		_, err = h.exec("c", uint64(len(h.recs)+1), chat.DeleteMessages{UID: bob, IDs: mids[:1]})
		require.NoError(t, err)
		applied := h.st.Applied()
		require.Equal(t, eventlog.Offset(len(h.recs)), applied)

		cut := applied - 3
		require.NoError(t, h.st.DropUndoThrough(cut))
		require.NoError(t, h.st.DropUndoThrough(cut), "again: nothing more to drop")
		_, err = h.st.RollbackTo(cut - 1)
		assert.ErrorIs(t, err, chat.ErrUndoUnavailable, "the batches at or below the offset cannot be undone any more")
		assert.Equal(t, applied, h.st.Applied(), "a refused rollback changes nothing")

		off, err := h.st.RollbackTo(cut)
		require.NoError(t, err, "the batches above it still can")
		assert.Equal(t, cut, off)
		assert.Equal(t, digest(t, replay(t, h.recs[:cut], 3)), digest(t, h.st))
		require.NoError(t, h.st.Apply(h.recs[cut:]))
		assert.Equal(t, digest(t, replay(t, h.recs, 3)), digest(t, h.st))
		require.NoError(t, h.st.Check())
	})
}

func TestState_PurgeBacklog(t *testing.T) {
	h := newHarness(t, chat.NewMemStore())
	ann := h.register("ann")
	bob := h.register("bob")
	for range 300 { // more views than one record's purge step removes
		h.send(ann, "bob", "x")
	}
	n, err := h.st.PurgeBacklog()
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = h.exec("c", uint64(len(h.recs)+1), chat.DeleteAccount{UID: ann})
	require.NoError(t, err)
	n, err = h.st.PurgeBacklog()
	require.NoError(t, err)
	assert.Equal(t, 1, n, "ann's views are still being removed")
	h.send(bob, "bob", "y") // the next record's purge step finishes them
	n, err = h.st.PurgeBacklog()
	require.NoError(t, err)
	assert.Zero(t, n)
}
