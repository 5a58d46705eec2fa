package eventlog_test

// BadgerLog passes the conformance and durability suites; these tests add
// what only a real database has: corruption on disk, the directory lock,
// read-only opening, transactions too large for Badger, and a writer killed
// with SIGKILL.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/eventlog/eventlogtest"
)

// openBadger opens dir and closes the log when the test ends (a second Close
// is harmless).
func openBadger(t *testing.T, dir string, opts eventlog.BadgerOptions) *eventlog.BadgerLog {
	t.Helper()
	l, err := eventlog.OpenBadger(dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, l.Close()) })
	return l
}

func TestBadgerLog_Conformance(t *testing.T) {
	eventlogtest.Run(t, func(t *testing.T) eventlog.Log {
		return openBadger(t, t.TempDir(), eventlog.BadgerOptions{})
	})
}

func TestBadgerLog_Durable(t *testing.T) {
	eventlogtest.RunDurable(t, func(t *testing.T, dir string) eventlog.Log {
		return openBadger(t, dir, eventlog.BadgerOptions{})
	})
}

// testRecords builds n records from offset from in epoch, with size-byte payloads.
func testRecords(from eventlog.Offset, n int, epoch eventlog.Epoch, size int) []eventlog.Record {
	recs := make([]eventlog.Record, n)
	for i := range recs {
		off := from + eventlog.Offset(i)
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(int(off) + j)
		}
		recs[i] = eventlog.Record{Offset: off, Epoch: epoch, Type: "chat.send", ClientID: "c", Seq: uint64(off), Time: int64(off), Data: data}
	}
	return recs
}

func readAll(t *testing.T, l eventlog.Log) []eventlog.Record {
	t.Helper()
	var out []eventlog.Record
	for next := l.First(); next <= l.Last(); {
		batch, err := l.Read(next, 1<<20)
		require.NoError(t, err)
		out = append(out, batch...)
		next += eventlog.Offset(len(batch))
	}
	return out
}

// rawKey is the key eventlog stores offset off under ("l/" + big-endian).
func rawKey(off eventlog.Offset) []byte {
	return append([]byte("l/"), byte(off>>56), byte(off>>48), byte(off>>40), byte(off>>32), byte(off>>24), byte(off>>16), byte(off>>8), byte(off))
}

func TestBadgerLog_CorruptRecord(t *testing.T) {
	good, err := eventlog.EncodeRecord(testRecords(5, 1, 1, 10)[0])
	require.NoError(t, err)
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-1] ^= 0xff
	other, err := eventlog.EncodeRecord(testRecords(9, 1, 1, 10)[0])
	require.NoError(t, err)

	tests := []struct {
		name   string
		value  []byte // nil: delete the key
		reason string
	}{
		{"checksum", flipped, "checksum"},
		{"short", []byte{1, 2}, "shorter than a checksum"},
		{"wrong offset", other, "holds offset 9"},
		{"missing", nil, "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openBadger(t, dir, eventlog.BadgerOptions{})
			require.NoError(t, l.Append(testRecords(1, 10, 1, 10)))
			err := l.DB().Update(func(txn *badger.Txn) error {
				if tt.value == nil {
					return txn.Delete(rawKey(5))
				}
				return txn.Set(rawKey(5), tt.value)
			})
			require.NoError(t, err)
			// Reopen: the records this process appended are served from
			// its tail cache, so damage on disk shows from the next start.
			require.NoError(t, l.Close())
			l = openBadger(t, dir, eventlog.BadgerOptions{})

			for _, from := range []eventlog.Offset{1, 5} {
				_, err = l.Read(from, 1<<20)
				var ce *eventlog.CorruptError
				require.ErrorAs(t, err, &ce, "read from %d", from)
				assert.Equal(t, eventlog.Offset(5), ce.Offset)
				assert.Contains(t, ce.Reason, tt.reason)
				assert.ErrorIs(t, err, eventlog.ErrCorrupt)
			}
			got, err := l.Read(1, 1)
			require.NoError(t, err, "records before the damage still read")
			assert.Len(t, got, 1)
			got, err = l.Read(6, 1<<20)
			require.NoError(t, err, "records after the damage still read")
			assert.Len(t, got, 5)
		})
	}
}

func TestOpenBadger_DamagedEnds(t *testing.T) {
	for _, off := range []eventlog.Offset{1, 10} {
		t.Run(fmt.Sprintf("offset %d", off), func(t *testing.T) {
			dir := t.TempDir()
			l, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
			require.NoError(t, err)
			require.NoError(t, l.Append(testRecords(1, 10, 1, 10)))
			require.NoError(t, l.DB().Update(func(txn *badger.Txn) error { return txn.Set(rawKey(off), []byte("garbage!")) }))
			require.NoError(t, l.Close())

			_, err = eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
			var ce *eventlog.CorruptError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, off, ce.Offset)
			assert.Contains(t, err.Error(), dir)
		})
	}
}

func TestOpenBadger_DamagedDirectory(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"garbage manifest", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "MANIFEST"), []byte("not a manifest at all"), 0o644))
		}},
		{"manifest is a directory", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "MANIFEST")))
			require.NoError(t, os.Mkdir(filepath.Join(dir, "MANIFEST"), 0o755))
		}},
		{"metadata undecodable", func(t *testing.T, dir string) {
			l, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
			require.NoError(t, err)
			require.NoError(t, l.DB().Update(func(txn *badger.Txn) error { return txn.Set([]byte("m/epochs"), []byte{0xc1}) }))
			require.NoError(t, l.Close())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
			require.NoError(t, err)
			require.NoError(t, l.Append(testRecords(1, 3, 1, 10)))
			require.NoError(t, l.Close())
			tt.damage(t, dir)

			_, err = eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "open eventlog "+dir)
			assert.NotErrorIs(t, err, eventlog.ErrLocked)
		})
	}
}

func TestOpenBadger_Locked(t *testing.T) {
	dir := t.TempDir()
	openBadger(t, dir, eventlog.BadgerOptions{})
	for _, ro := range []bool{false, true} {
		_, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{ReadOnly: ro})
		require.ErrorIs(t, err, eventlog.ErrLocked, "read-only %v", ro)
		assert.Contains(t, err.Error(), dir)
		assert.Contains(t, err.Error(), "in use by another process")
	}
}

func TestOpenBadger_ReadOnly(t *testing.T) {
	dir := t.TempDir()
	l, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
	require.NoError(t, err)
	recs := testRecords(1, 300, 2, 100)
	require.NoError(t, l.Append(recs))
	require.NoError(t, l.AddEpoch(eventlog.EpochStart{Epoch: 2, Start: 1}))
	require.NoError(t, l.Truncate(290))
	require.NoError(t, l.Compact(10))
	require.NoError(t, l.SetMeta("hard", []byte("x")))
	require.NoError(t, l.Close())

	// Two read-only opens share the directory.
	ro := openBadger(t, dir, eventlog.BadgerOptions{ReadOnly: true})
	ro2 := openBadger(t, dir, eventlog.BadgerOptions{ReadOnly: true})
	for _, l := range []*eventlog.BadgerLog{ro, ro2} {
		assert.Equal(t, recs[10:290], readAll(t, l))
		assert.Equal(t, eventlog.Epoch(2), l.LastEpoch())
		assert.Equal(t, []eventlog.EpochStart{{Epoch: 2, Start: 1}}, l.Epochs())
		rolled, err := l.RolledBack(100)
		require.NoError(t, err)
		assert.Equal(t, recs[290:], rolled)
	}

	// Every write is refused.
	for name, err := range map[string]error{
		"Append":            ro.Append(testRecords(291, 1, 2, 1)),
		"Truncate":          ro.Truncate(5),
		"AddEpoch":          ro.AddEpoch(eventlog.EpochStart{Epoch: 3, Start: 291}),
		"Compact":           ro.Compact(20),
		"Restore":           ro.Restore(500, 3, nil),
		"DiscardRolledBack": ro.DiscardRolledBack(1),
		"SetMeta":           ro.SetMeta("a", nil),
		"Write":             ro.Write(eventlog.Batch{Meta: []eventlog.MetaValue{{Name: "a"}}, Records: testRecords(291, 1, 2, 1)}),
	} {
		assert.ErrorIs(t, err, eventlog.ErrReadOnly, name)
	}
	// A writer cannot open while readers hold the directory.
	_, err = eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
	assert.ErrorIs(t, err, eventlog.ErrLocked)
}

func TestOpenBadger_ReadOnlyMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "absent")
	_, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{ReadOnly: true})
	require.ErrorIs(t, err, os.ErrNotExist)
	_, statErr := os.Stat(dir)
	assert.ErrorIs(t, statErr, os.ErrNotExist, "a read-only open creates nothing")
}

// TestBadgerLog_LargeOperations uses a tiny memtable so that Badger's
// transaction limit (15% of it) forces Append, Truncate, Compact, Restore and
// DiscardRolledBack to split their writes.
func TestBadgerLog_LargeOperations(t *testing.T) {
	dir := t.TempDir()
	opts := eventlog.BadgerOptions{MemTableSize: 1 << 20}
	l := openBadger(t, dir, opts)
	require.Less(t, l.DB().MaxBatchSize(), int64(200_000))
	recs := testRecords(1, 3000, 1, 200) // about 700 KB: several transactions
	require.NoError(t, l.Append(recs))
	assert.Equal(t, recs, readAll(t, l))

	require.NoError(t, l.Truncate(500))
	rolled, err := l.RolledBack(10_000)
	require.NoError(t, err)
	assert.Equal(t, recs[500:], rolled)
	require.NoError(t, l.DiscardRolledBack(2000))
	rolled, err = l.RolledBack(10_000)
	require.NoError(t, err)
	assert.Equal(t, recs[2500:], rolled)

	require.NoError(t, l.Append(recs[500:]))
	require.NoError(t, l.Compact(2000))
	assert.Equal(t, recs[2000:], readAll(t, l))

	require.NoError(t, l.Close())
	l = openBadger(t, dir, opts)
	assert.Equal(t, recs[2000:], readAll(t, l))
	big := eventlog.Record{Offset: l.Last() + 1, Epoch: 1, Type: "big", Data: make([]byte, 3<<20)}
	require.NoError(t, l.Append([]eventlog.Record{big}), "a record far above the transaction limit")
	require.NoError(t, l.Close())
	l = openBadger(t, dir, opts)
	got, err := l.Read(big.Offset, 1)
	require.NoError(t, err)
	assert.Equal(t, []eventlog.Record{big}, got)
	require.NoError(t, l.Restore(1000, 1, nil)) // behind the log: deletes everything
	assert.Equal(t, eventlog.Offset(1000), l.Last())
	require.NoError(t, l.Close())

	l = openBadger(t, dir, opts)
	assert.Equal(t, eventlog.Offset(1001), l.First())
	assert.Equal(t, eventlog.Offset(1000), l.Last())
	rolled, err = l.RolledBack(10_000)
	require.NoError(t, err)
	assert.Equal(t, recs[2500:], rolled)
	// Nothing of the old log is left in the database.
	assert.Zero(t, recordKeys(t, l))
}

// TestBadgerLog_InterruptedTruncate plants the state a crash in the middle of
// a multi-transaction Truncate leaves (marker written, some records moved)
// and checks that read-only opens hide the truncated records and that the
// next read-write open finishes the move.
func TestBadgerLog_InterruptedTruncate(t *testing.T) {
	dir := t.TempDir()
	l, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
	require.NoError(t, err)
	recs := testRecords(1, 10, 1, 10)
	require.NoError(t, l.Append(recs))
	// Truncate after 4 with rollback sequences from 0; records 9 and 10 were
	// already moved to sequences 4 and 5 when the crash came.
	marker := []byte{0x83, 0xa5, 'a', 'f', 't', 'e', 'r', 0x04, 0xa8, 'r', 'o', 'l', 'l', 'b', 'a', 'c', 'k', 0xc3, 0xa3, 's', 'e', 'q', 0x00}
	require.NoError(t, l.DB().Update(func(txn *badger.Txn) error {
		if err := txn.Set([]byte("m/pending"), marker); err != nil {
			return err
		}
		for i, off := range []eventlog.Offset{9, 10} {
			v, err := eventlog.EncodeRecord(recs[off-1])
			if err != nil {
				return err
			}
			if err := txn.Set(append([]byte("r/"), 0, 0, 0, 0, 0, 0, 0, byte(4+i)), v); err != nil {
				return err
			}
			if err := txn.Delete(rawKey(off)); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, l.Close())

	ro, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{ReadOnly: true})
	require.NoError(t, err)
	assert.Equal(t, eventlog.Offset(4), ro.Last(), "records above the marker are invisible")
	assert.Equal(t, recs[:4], readAll(t, ro))
	require.NoError(t, ro.Close())

	l = openBadger(t, dir, eventlog.BadgerOptions{})
	assert.Equal(t, recs[:4], readAll(t, l))
	rolled, err := l.RolledBack(100)
	require.NoError(t, err)
	assert.Equal(t, recs[4:], rolled, "the open finished the move, in offset order")
	require.NoError(t, l.Truncate(2))
	rolled, err = l.RolledBack(100)
	require.NoError(t, err)
	assert.Equal(t, append(recs[4:10:10], recs[2:4]...), rolled, "later truncations come after")
}

// The SIGKILL test re-executes the test binary as a writer process.
const killEnv = "EVENTLOG_TEST_KILL_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(killEnv); dir != "" {
		os.Exit(killChild(dir))
	}
	if dir := os.Getenv(writeKillEnv); dir != "" {
		os.Exit(writeKillChild(dir, os.Getenv(writeModeEnv)))
	}
	os.Exit(m.Run())
}

// killChild appends batches forever, printing each durable last offset.
func killChild(dir string) int {
	l, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for {
		recs := testRecords(l.Last()+1, 50, 1, 100)
		if err := l.Append(recs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(l.Last())
	}
}

func TestBadgerLog_SurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	// Wait until the child reports enough durable appends, then kill it
	// in the middle of the next ones.
	var acked eventlog.Offset
	sc := bufio.NewScanner(out)
	for acked < 2000 && sc.Scan() {
		n, err := strconv.ParseUint(sc.Text(), 10, 64)
		require.NoError(t, err)
		acked = eventlog.Offset(n)
	}
	require.GreaterOrEqual(t, acked, eventlog.Offset(2000), "child stopped early: %v", sc.Err())
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	err = cmd.Wait()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "child exit: %v", err)

	for _, ro := range []bool{true, false} {
		l, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{ReadOnly: ro})
		require.NoError(t, err, "read-only %v", ro)
		got := readAll(t, l)
		assert.GreaterOrEqual(t, l.Last(), acked, "read-only %v: every acknowledged append survives", ro)
		assert.Len(t, got, int(l.Last()))
		require.NoError(t, l.Close())
	}
}

// TestBadgerLog_InterruptedCompactAndDiscard plants what a crash leaves after
// the first transaction of a large Compact (m/base written, old records
// still there) and of a large DiscardRolledBack (m/rbfirst written): those
// records are invisible, and a read-write open deletes them.
func TestBadgerLog_InterruptedCompactAndDiscard(t *testing.T) {
	dir := t.TempDir()
	l, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{})
	require.NoError(t, err)
	recs := testRecords(1, 10, 1, 10)
	require.NoError(t, l.Append(recs))
	require.NoError(t, l.Truncate(6)) // rollback sequences 0..3 hold offsets 7..10
	require.NoError(t, l.DB().Update(func(txn *badger.Txn) error {
		b, err := msgpack.Marshal(map[string]uint64{"offset": 4, "epoch": 1})
		if err != nil {
			return err
		}
		if err := txn.Set([]byte("m/base"), b); err != nil {
			return err
		}
		b, err = msgpack.Marshal(uint64(2))
		if err != nil {
			return err
		}
		return txn.Set([]byte("m/rbfirst"), b)
	}))
	require.NoError(t, l.Close())

	check := func(l *eventlog.BadgerLog) {
		t.Helper()
		assert.Equal(t, eventlog.Offset(5), l.First())
		assert.Equal(t, recs[4:6], readAll(t, l))
		rolled, err := l.RolledBack(10)
		require.NoError(t, err)
		assert.Equal(t, recs[8:], rolled)
	}
	ro, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{ReadOnly: true})
	require.NoError(t, err)
	check(ro)
	require.NoError(t, ro.Close())

	l = openBadger(t, dir, eventlog.BadgerOptions{})
	check(l)
	count := func(prefix string) int {
		n := 0
		require.NoError(t, l.DB().View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				n++
			}
			return nil
		}))
		return n
	}
	assert.Equal(t, 2, count("l/"), "compacted records deleted")
	assert.Equal(t, 2, count("r/"), "discarded rollback records deleted")
}

// TestOpenBadger_ReadOnlyAfterCrashBetweenMemtables plants what a writer
// killed right after creating its next memtable file leaves (the file, still
// empty): Badger cannot size it read-only, so the read-only open recovers the
// directory first and reads every record. CI found this through chatreplay
// on a SIGKILLed replica's directory.
func TestOpenBadger_ReadOnlyAfterCrashBetweenMemtables(t *testing.T) {
	dir := t.TempDir()
	l := openBadger(t, dir, eventlog.BadgerOptions{})
	recs := testRecords(1, 200, 1, 100)
	require.NoError(t, l.Append(recs))
	require.NoError(t, l.Close())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "00099.mem"), nil, 0o600))

	for range 2 { // the second open finds a clean directory
		ro, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{ReadOnly: true})
		require.NoError(t, err)
		assert.Equal(t, recs, readAll(t, ro))
		require.NoError(t, ro.Close())
	}

	// With a live writer holding the directory the reader is told so, and
	// the writer's files are left alone.
	w := openBadger(t, dir, eventlog.BadgerOptions{})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "00098.mem"), nil, 0o600))
	_, err := eventlog.OpenBadger(dir, eventlog.BadgerOptions{ReadOnly: true})
	assert.ErrorIs(t, err, eventlog.ErrLocked)
	assert.Equal(t, recs, readAll(t, w))
	fi, err := os.Stat(filepath.Join(dir, "00098.mem"))
	require.NoError(t, err)
	assert.Zero(t, fi.Size(), "the reader did not repair a live writer's file")
}
