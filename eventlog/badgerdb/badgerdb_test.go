package badgerdb_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
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

// TestOpen_EmptyFilesOfAKilledWriter plants what a writer killed between
// creating a memtable or value-log file and sizing it leaves: the empty
// files. Badger alone fails to open such a directory (dgraph-io/badger#2207).
func TestOpen_EmptyFilesOfAKilledWriter(t *testing.T) {
	for _, planted := range [][]string{{"00099.mem"}, {"000099.vlog"}, {"00099.mem", "000099.vlog"}} {
		t.Run(strings.Join(planted, "+"), func(t *testing.T) {
			dir := t.TempDir()
			cfg := badgerdb.Config{Dir: dir, SyncWrites: true}
			db, err := badgerdb.Open(badgerdb.Options(cfg))
			require.NoError(t, err)
			require.NoError(t, db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) }))
			require.NoError(t, db.Close())
			for _, f := range planted {
				require.NoError(t, os.WriteFile(filepath.Join(dir, f), nil, 0o600))
			}

			ro := cfg
			ro.ReadOnly = true
			_, err = badgerdb.Open(badgerdb.Options(ro))
			require.ErrorIs(t, err, badgerdb.ErrUnclean, "a reader is told the directory needs a writer's open")

			for _, c := range []badgerdb.Config{cfg, ro} { // the writer's open repairs it for readers
				db, err = badgerdb.Open(badgerdb.Options(c))
				require.NoError(t, err, "read-only %v", c.ReadOnly)
				require.NoError(t, db.View(func(txn *badger.Txn) error {
					item, err := txn.Get([]byte("k"))
					if err != nil {
						return err
					}
					v, err := item.ValueCopy(nil)
					assert.Equal(t, "v", string(v))
					return err
				}))
				require.NoError(t, db.Close())
			}
		})
	}
}
