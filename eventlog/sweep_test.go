package eventlog_test

// Compact moves the base at once and leaves the compacted records' keys
// to later writes and to Purge (sweepSome, sweep): these tests check that
// the keys do go, that nothing of them is ever visible, and that a Restore
// below a compaction not yet swept leaves no old key above its base.

import (
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
)

// recordKeys counts the record keys in l's database, visible or not.
func recordKeys(t *testing.T, l *eventlog.BadgerLog) int {
	t.Helper()
	n := 0
	require.NoError(t, l.DB().View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("l/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	}))
	return n
}

func TestBadgerLog_CompactSweepsWithLaterWrites(t *testing.T) {
	l := openBadger(t, t.TempDir(), eventlog.BadgerOptions{})
	recs := testRecords(1, 3000, 1, 20)
	require.NoError(t, l.Append(recs))
	require.NoError(t, l.Compact(2000))
	assert.Equal(t, eventlog.Offset(2001), l.First())
	assert.Equal(t, recs[2000:], readAll(t, l), "compacted records are invisible at once")
	assert.Equal(t, 3000, recordKeys(t, l), "their keys go later, not in Compact")

	// Each write deletes a few: 2000 keys go within 63 writes of 32.
	more := testRecords(3001, 70, 1, 20)
	for i := range more {
		require.NoError(t, l.Append(more[i:i+1]))
	}
	assert.Equal(t, 1070, recordKeys(t, l))
	assert.Equal(t, append(recs[2000:], more...), readAll(t, l))
}

func TestBadgerLog_PurgeSweepsTheRest(t *testing.T) {
	l := openBadger(t, t.TempDir(), eventlog.BadgerOptions{})
	require.NoError(t, l.Append(testRecords(1, 3000, 1, 20)))
	require.NoError(t, l.Compact(2500))
	require.NoError(t, l.Purge(t.Context()))
	assert.Equal(t, 500, recordKeys(t, l))
}

func TestBadgerLog_RestoreBelowAnUnsweptCompaction(t *testing.T) {
	dir := t.TempDir()
	opts := eventlog.BadgerOptions{}
	l := openBadger(t, dir, opts)
	require.NoError(t, l.Append(testRecords(1, 3000, 1, 20)))
	require.NoError(t, l.Compact(2000))
	require.NoError(t, l.Restore(500, 1, nil))
	assert.Zero(t, recordKeys(t, l), "the unswept keys above the new base are gone too")
	next := testRecords(501, 10, 1, 20)
	require.NoError(t, l.Append(next))
	require.NoError(t, l.Close())

	l = openBadger(t, dir, opts)
	assert.Equal(t, eventlog.Offset(510), l.Last(), "no old key is taken for the log's end")
	assert.Equal(t, next, readAll(t, l))
	// Compacted again, the keys written again are swept again.
	require.NoError(t, l.Compact(505))
	require.NoError(t, l.Purge(t.Context()))
	assert.Equal(t, 5, recordKeys(t, l))
}

func TestBadgerLog_OpenDeletesUnsweptKeys(t *testing.T) {
	dir := t.TempDir()
	l := openBadger(t, dir, eventlog.BadgerOptions{})
	recs := testRecords(1, 3000, 1, 20)
	require.NoError(t, l.Append(recs))
	require.NoError(t, l.Compact(2000))
	require.NoError(t, l.Close())
	l = openBadger(t, dir, eventlog.BadgerOptions{})
	assert.Equal(t, 1000, recordKeys(t, l))
	assert.Equal(t, recs[2000:], readAll(t, l))
}
