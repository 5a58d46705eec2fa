package chatdb_test

// Goal: on Badger, the undo history survives closing and reopening the
// database (it is kept in the state's own keys, and a reopened State goes on
// recording it), a rollback after the reopen gives the state a replay of the
// shorter log gives, and its undo keys stay out of the digest.

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/eventlog"
)

func applyIn(t *testing.T, st *chat.State, recs []eventlog.Record, batch int) {
	t.Helper()
	for i := 0; i < len(recs); i += batch {
		require.NoError(t, st.Apply(recs[i:min(i+batch, len(recs))]))
	}
}

func digestAt(t *testing.T, recs []eventlog.Record) []byte {
	t.Helper()
	st := chat.NewState(chat.NewMemStore())
	applyIn(t, st, recs, 50)
	d, err := st.Digest()
	require.NoError(t, err)
	return d
}

func TestDB_RollbackAfterReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	recs := sends(t, 600)

	db, err := chatdb.Open(dir, chatdb.Options{})
	require.NoError(t, err)
	st := chat.NewState(db.Store())
	st.SetStable(100)
	applyIn(t, st, recs[:400], 16)
	require.NoError(t, db.Close())

	db, err = chatdb.Open(dir, chatdb.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	st = chat.NewState(db.Store()) // nobody told it the stable offset yet
	applyIn(t, st, recs[400:], 16)
	d, err := st.Digest()
	require.NoError(t, err)
	assert.Equal(t, digestAt(t, recs), d, "undo keys are not in the digest")

	got, err := st.RollbackTo(150)
	require.NoError(t, err)
	assert.LessOrEqual(t, got, eventlog.Offset(150))
	assert.Greater(t, got, eventlog.Offset(130))
	d, err = st.Digest()
	require.NoError(t, err)
	assert.Equal(t, digestAt(t, recs[:got]), d)
	require.NoError(t, st.Check())

	_, err = st.RollbackTo(90)
	assert.ErrorIs(t, err, chat.ErrUndoUnavailable, "at or below the stable offset: no undo")
}
