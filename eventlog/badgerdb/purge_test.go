package badgerdb_test

// Goal: after Purge, no file of the database holds the value of a deleted
// or overwritten key, while the live values are still found in the same
// files by the same search (the positive control, without which a search
// defeated by compression would pass), with writers running meanwhile.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog/badgerdb"
)

// randomText returns n random printable ASCII bytes: practically
// incompressible for Snappy, which compresses Badger's table blocks, so a
// value stored in a table is found there byte for byte.
func randomText(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(33 + rng.IntN(94))
	}
	return b
}

// dirFiles reads every file under dir.
func dirFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := make(map[string][]byte)
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if os.IsNotExist(err) {
			return nil // removed by Badger between the listing and the visit
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			return nil // removed meanwhile by Badger
		}
		files[filepath.Base(path)] = b
		return err
	})
	require.NoError(t, err)
	return files
}

// holding returns the files that contain the middle of needle: Snappy may
// fold a few bytes at its edges into a match with the bytes around it.
func holding(files map[string][]byte, needle []byte) []string {
	var found []string
	for name, b := range files {
		if bytes.Contains(b, needle[16:len(needle)-16]) {
			found = append(found, name)
		}
	}
	return found
}

func TestPurge(t *testing.T) {
	tests := []struct {
		name string
		keys int // enough to reach levels below 0, or not
		deep bool
	}{
		{"level zero only", 200, false},
		{"several levels", 20000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// Small memtables, so that a few MiB make several levels.
			db, err := badgerdb.Open(badgerdb.Options(badgerdb.Config{Dir: dir, SyncWrites: true, MemTableSize: 1 << 20}))
			require.NoError(t, err)
			defer db.Close()
			rng := rand.New(rand.NewPCG(1, uint64(tt.keys)))
			key := func(i int) []byte { return fmt.Appendf(nil, "k/%08d", i) }
			vals := make([][]byte, tt.keys)
			wb := db.NewWriteBatch()
			for i := range vals {
				vals[i] = randomText(rng, 200)
				require.NoError(t, wb.Set(key(i), vals[i]))
			}
			require.NoError(t, wb.Flush())
			// Every tenth key deleted, every tenth (another) overwritten.
			var gone, kept [][]byte
			wb = db.NewWriteBatch()
			for i := range vals {
				switch i % 10 {
				case 3:
					require.NoError(t, wb.Delete(key(i)))
					gone = append(gone, vals[i])
				case 5:
					require.NoError(t, wb.Set(key(i), randomText(rng, 200)))
					gone = append(gone, vals[i])
				case 7:
					kept = append(kept, vals[i])
				}
			}
			require.NoError(t, wb.Flush())
			sample := func(vs [][]byte) [][]byte { return vs[:min(len(vs), 20)] }
			deep := func() bool {
				for _, tb := range db.Tables() {
					if tb.Level > 0 {
						return true
					}
				}
				return false
			}
			if tt.deep {
				require.Eventually(t, deep, 10*time.Second, 10*time.Millisecond, "Badger compacts into a level below 0")
			} else {
				require.False(t, deep(), "only level 0 has tables")
			}
			files := dirFiles(t, dir)
			for _, v := range sample(gone) {
				require.NotEmpty(t, holding(files, v), "before the purge the old values are on disk (else this test proves nothing)")
			}

			// Writers go on during the purge: none may fail.
			var (
				stop    atomic.Bool
				wg      sync.WaitGroup
				written atomic.Int64
			)
			wg.Go(func() {
				for i := 0; !stop.Load(); i++ {
					if err := db.Update(func(txn *badger.Txn) error {
						return txn.Set(fmt.Appendf(nil, "w/%08d", i), []byte("concurrent"))
					}); err != nil {
						t.Errorf("write during the purge: %v", err)
						return
					}
					written.Add(1)
				}
			})
			start := time.Now()
			err = badgerdb.Purge(t.Context(), db, []byte("~purge"))
			t.Logf("purge took %v, %d concurrent writes", time.Since(start), written.Load())
			stop.Store(true)
			wg.Wait()
			require.NoError(t, err)
			assert.Positive(t, written.Load())

			files = dirFiles(t, dir)
			for i, v := range gone {
				if i%max(1, len(gone)/200) == 0 {
					assert.Empty(t, holding(files, v), "a deleted or overwritten value is gone from every file")
				}
			}
			for _, v := range sample(kept) {
				assert.NotEmpty(t, holding(files, v), "a live value is still found (positive control)")
			}
			// The data reads back.
			require.NoError(t, db.View(func(txn *badger.Txn) error {
				for i := range vals {
					item, err := txn.Get(key(i))
					if i%10 == 3 {
						assert.ErrorIs(t, err, badger.ErrKeyNotFound)
						continue
					}
					require.NoError(t, err)
					if i%10 != 5 {
						v, err := item.ValueCopy(nil)
						require.NoError(t, err)
						assert.Equal(t, vals[i], v)
					}
				}
				_, err := txn.Get([]byte("~purge"))
				assert.ErrorIs(t, err, badger.ErrKeyNotFound, "the filler is deleted")
				return nil
			}))
		})
	}
}

func TestPurge_ReadOnly(t *testing.T) {
	dir := t.TempDir()
	db, err := badgerdb.Open(badgerdb.Options(badgerdb.Config{Dir: dir}))
	require.NoError(t, err)
	require.NoError(t, db.Close())
	ro, err := badgerdb.Open(badgerdb.Options(badgerdb.Config{Dir: dir, ReadOnly: true}))
	require.NoError(t, err)
	defer ro.Close()
	assert.Error(t, badgerdb.Purge(t.Context(), ro, []byte("~purge")))
}

// BenchmarkPurge_Log measures Purge on a log-like database (synced writes,
// keys in offset order, 300-byte records): 210k records of which the
// oldest 100k were removed by a compaction, with a writer appending one
// record per synced transaction meanwhile, whose latencies it reports:
// Purge blocks no write (Badger's DropPrefix, the API that flushes on
// request, refuses every write while it runs).
func BenchmarkPurge_Log(b *testing.B) {
	db, err := badgerdb.Open(badgerdb.Options(badgerdb.Config{Dir: b.TempDir(), SyncWrites: true}))
	require.NoError(b, err)
	defer db.Close()
	key := func(i int) []byte { return binary.BigEndian.AppendUint64([]byte("l/"), uint64(i)) }
	rng := rand.New(rand.NewPCG(1, 1))
	const live, compacted = 110_000, 100_000
	for i := 1; i <= live+compacted; i += 256 {
		txn := db.NewTransaction(true)
		for j := i; j < i+256 && j <= live+compacted; j++ {
			require.NoError(b, txn.Set(key(j), randomText(rng, 300)))
		}
		require.NoError(b, txn.Commit())
	}
	for i := 1; i <= compacted; i += 1000 {
		txn := db.NewTransaction(true)
		for j := i; j < i+1000 && j <= compacted; j++ {
			require.NoError(b, txn.Delete(key(j)))
		}
		require.NoError(b, txn.Commit())
	}
	var (
		stop atomic.Bool
		wg   sync.WaitGroup
		lats []time.Duration
	)
	wg.Go(func() {
		val := randomText(rng, 300)
		for i := live + compacted + 1; !stop.Load(); i++ {
			start := time.Now()
			if err := db.Update(func(txn *badger.Txn) error { return txn.Set(key(i), val) }); err != nil {
				b.Error(err)
				return
			}
			lats = append(lats, time.Since(start))
		}
	})
	for b.Loop() {
		require.NoError(b, badgerdb.Purge(b.Context(), db, []byte("x/purge")))
	}
	stop.Store(true)
	wg.Wait()
	slices.Sort(lats)
	b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "append-p99-ms")
	b.ReportMetric(float64(lats[len(lats)-1].Microseconds())/1000, "append-max-ms")
}
