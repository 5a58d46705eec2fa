package badgerdb_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog/badgerdb"
)

func TestOpen_LockedAndDamagedDirectories(t *testing.T) {
	dir := t.TempDir()
	db, err := badgerdb.Open(badgerdb.Options(badgerdb.Config{Dir: dir, SyncWrites: true}))
	require.NoError(t, err)
	defer db.Close()
	_, err = badgerdb.Open(badgerdb.Options(badgerdb.Config{Dir: dir}))
	assert.ErrorIs(t, err, badgerdb.ErrLocked, "a second opener is told the directory is in use")

	damaged := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(damaged, "MANIFEST"), []byte("not a manifest"), 0o644))
	_, err = badgerdb.Open(badgerdb.Options(badgerdb.Config{Dir: damaged}))
	assert.Error(t, err, "a damaged directory is an error, not a crash")
}

func TestOptions_Defaults(t *testing.T) {
	o := badgerdb.Options(badgerdb.Config{Dir: "d", SyncWrites: true})
	assert.True(t, o.SyncWrites)
	assert.Equal(t, int64(16<<20), o.MemTableSize)
	assert.Less(t, o.ValueThreshold, o.MemTableSize*15/100, "values must fit a transaction")
	o = badgerdb.Options(badgerdb.Config{Dir: "d", MemTableSize: 1 << 20, ReadOnly: true})
	assert.False(t, o.SyncWrites)
	assert.True(t, o.ReadOnly)
	assert.Equal(t, int64(1<<20), o.MemTableSize)
}
