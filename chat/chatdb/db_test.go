package chatdb_test

// Goal: Open gives a working, reopenable state database, refuses clearly a
// directory another process holds or a path that is not a directory, and
// Sync and Close succeed on a database with data.

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/eventlog"
)

func TestOpen_ReopensState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // created by Open
	recs := sends(t, 3000)

	db, err := chatdb.Open(dir, chatdb.Options{})
	require.NoError(t, err)
	st := chat.NewState(db.Store())
	require.NoError(t, st.Apply(recs))
	want, err := st.Digest()
	require.NoError(t, err)
	require.NoError(t, db.Sync())
	require.NoError(t, db.Close())

	db, err = chatdb.Open(dir, chatdb.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	again := chat.NewState(db.Store())
	assert.Equal(t, eventlog.Offset(len(recs)), again.Applied())
	got, err := again.Digest()
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.NoError(t, again.Check())
}

func TestOpen_Errors(t *testing.T) {
	held := t.TempDir()
	db, err := chatdb.Open(held, chatdb.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })

	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))

	t.Run("locked", func(t *testing.T) {
		_, err := chatdb.Open(held, chatdb.Options{})
		require.Error(t, err)
		assert.ErrorIs(t, err, chatdb.ErrLocked)
		assert.Contains(t, err.Error(), held)
	})
	t.Run("not a directory", func(t *testing.T) {
		_, err := chatdb.Open(file, chatdb.Options{})
		require.Error(t, err)
		assert.NotErrorIs(t, err, chatdb.ErrLocked)
		assert.Contains(t, err.Error(), "open chat state "+file)
	})
}

func TestDB_SyncAfterCloseFails(t *testing.T) {
	db, err := chatdb.Open(t.TempDir(), chatdb.Options{})
	require.NoError(t, err)
	require.NoError(t, db.Sync())
	require.NoError(t, db.Close())
	require.NoError(t, db.Close(), "closing twice is harmless")
	require.ErrorIs(t, db.Sync(), chatdb.ErrClosed, "rather than blocking forever inside Badger")
}
