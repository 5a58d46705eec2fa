package eventlog_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
)

// The tail cache serves reads of recently appended records; these tests
// check that what Read returns never depends on whether it came from the
// cache or from Badger.

func TestBadgerLog_TailReads(t *testing.T) {
	tests := []struct {
		name  string
		n     int // records appended, in batches of 100
		size  int // bytes of Data each
		froms []eventlog.Offset
	}{
		{"all cached", 300, 10, []eventlog.Offset{1, 150, 300}},
		// More records than the cache holds: early reads go to Badger and
		// run into the cached part.
		{"beyond record bound", 5000, 10, []eventlog.Offset{1, 900, 904, 905, 4999, 5000}},
		// Records big enough that the byte bound evicts first.
		{"beyond byte bound", 100, 64 << 10, []eventlog.Offset{1, 50, 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openBadger(t, dir, eventlog.BadgerOptions{})
			var want []eventlog.Record
			for from := 1; from <= tt.n; from += 100 {
				recs := testRecords(eventlog.Offset(from), min(100, tt.n-from+1), 1, tt.size)
				require.NoError(t, l.Append(recs))
				want = append(want, testRecords(eventlog.Offset(from), len(recs), 1, tt.size)...)
			}
			for _, from := range tt.froms {
				got := readFrom(t, l, from)
				assert.Equal(t, want[from-1:], got, "read from %d", from)
			}
			// The same reads from a fresh open (nothing cached) agree.
			require.NoError(t, l.Close())
			l = openBadger(t, dir, eventlog.BadgerOptions{})
			for _, from := range tt.froms {
				assert.Equal(t, want[from-1:], readFrom(t, l, from), "read from %d after reopen", from)
			}
		})
	}
}

func TestBadgerLog_TailReadOwnership(t *testing.T) {
	l := openBadger(t, t.TempDir(), eventlog.BadgerOptions{})
	require.NoError(t, l.Append(testRecords(1, 3, 1, 8)))
	first, err := l.Read(1, 1<<20)
	require.NoError(t, err)
	require.Len(t, first, 3)
	for i := range first {
		clear(first[i].Data)
		first[i].Type = "scribbled"
	}
	again, err := l.Read(1, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, testRecords(1, 3, 1, 8), again, "a caller's changes do not reach the cache")
}

func TestBadgerLog_TailAfterRewrites(t *testing.T) {
	tests := []struct {
		name    string
		rewrite func(t *testing.T, l *eventlog.BadgerLog) []eventlog.Record // returns the log's records after it
	}{
		{"truncate and append other records", func(t *testing.T, l *eventlog.BadgerLog) []eventlog.Record {
			require.NoError(t, l.Truncate(5))
			require.NoError(t, l.AddEpoch(eventlog.EpochStart{Epoch: 2, Start: 6}))
			require.NoError(t, l.Append(testRecords(6, 3, 2, 20)))
			return append(testRecords(1, 5, 1, 10), testRecords(6, 3, 2, 20)...)
		}},
		{"compact", func(t *testing.T, l *eventlog.BadgerLog) []eventlog.Record {
			require.NoError(t, l.Compact(4))
			return testRecords(5, 6, 1, 10)
		}},
		{"restore behind and append", func(t *testing.T, l *eventlog.BadgerLog) []eventlog.Record {
			require.NoError(t, l.Restore(3, 1, []eventlog.EpochStart{{Epoch: 1, Start: 1}}))
			require.NoError(t, l.Append(testRecords(4, 2, 1, 30)))
			return testRecords(4, 2, 1, 30)
		}},
		{"restore ahead and append", func(t *testing.T, l *eventlog.BadgerLog) []eventlog.Record {
			require.NoError(t, l.Restore(20, 1, []eventlog.EpochStart{{Epoch: 1, Start: 1}}))
			require.NoError(t, l.Append(testRecords(21, 2, 1, 30)))
			return testRecords(21, 2, 1, 30)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := openBadger(t, t.TempDir(), eventlog.BadgerOptions{})
			require.NoError(t, l.AddEpoch(eventlog.EpochStart{Epoch: 1, Start: 1}))
			require.NoError(t, l.Append(testRecords(1, 10, 1, 10)))
			_ = readFrom(t, l, 1) // reads served by the cache before the rewrite
			want := tt.rewrite(t, l)
			assert.Equal(t, want, readFrom(t, l, l.First()))
			_, err := l.Read(l.First()-1, 1<<20)
			if l.First() > 1 {
				assert.ErrorIs(t, err, eventlog.ErrCompacted)
			}
		})
	}
}

// readFrom reads from..Last() in small batches, checking each batch's size
// rule (at least one record, stop once maxBytes is reached).
func readFrom(t *testing.T, l eventlog.Log, from eventlog.Offset) []eventlog.Record {
	t.Helper()
	const maxBytes = 4096
	var out []eventlog.Record
	for next := from; next <= l.Last(); {
		batch, err := l.Read(next, maxBytes)
		require.NoError(t, err)
		require.NotEmpty(t, batch)
		total := 0
		for i, r := range batch[:len(batch)-1] {
			enc, err := eventlog.EncodeRecord(r)
			require.NoError(t, err)
			total += len(enc)
			require.Less(t, total, maxBytes, "batch from %d went on past maxBytes at record %d", next, i)
		}
		out = append(out, batch...)
		next += eventlog.Offset(len(batch))
	}
	return out
}
