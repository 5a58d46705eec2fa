package eventlog_test

// BadgerLog.Write beyond the conformance suite: how many synced
// transactions each kind of batch costs (counted by Badger's commit
// timestamps, every commit being synced under SyncWrites, and by
// ObserveSync), batches too large for one transaction, what a writer
// killed with SIGKILL in the middle of Writes leaves, and the cost of an
// epoch change written at once or step by step.

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/eventlog/eventlogtest"
)

// commits returns the number of write transactions committed to l's
// database so far: in Badger's non-managed mode each commit takes the next
// timestamp. Under SyncWrites each one is synced before Commit returns.
func commits(l *eventlog.BadgerLog) uint64 { return l.DB().MaxVersion() }

// logState is everything Write may change in a log, for comparisons.
type logState struct {
	First, Last eventlog.Offset
	LastEpoch   eventlog.Epoch
	Epochs      []eventlog.EpochStart
	Records     []eventlog.Record
	Rolled      []eventlog.Record
	Meta        map[string]string
}

var stateMeta = []string{"batch", "hs", "isr"}

func stateOf(t *testing.T, l eventlog.Log) logState {
	t.Helper()
	rolled, err := l.RolledBack(1 << 30)
	require.NoError(t, err)
	s := logState{First: l.First(), Last: l.Last(), LastEpoch: l.LastEpoch(), Epochs: l.Epochs(),
		Records: readAll(t, l), Rolled: rolled, Meta: map[string]string{}}
	for _, n := range stateMeta {
		v, ok, err := l.Meta(n)
		require.NoError(t, err)
		if ok {
			s.Meta[n] = string(v)
		}
	}
	if len(s.Epochs) == 0 {
		s.Epochs = nil
	}
	if len(s.Records) == 0 {
		s.Records = nil
	}
	if len(s.Rolled) == 0 {
		s.Rolled = nil
	}
	return s
}

// epochChange is the Ready of a replica that becomes primary of epoch e on
// a log ending at last: its hard state, the index of the ISR record it
// appends, the record, and the epoch entry starting at it.
func epochChange(e eventlog.Epoch, last eventlog.Offset) eventlog.Batch {
	return eventlog.Batch{
		Meta:              []eventlog.MetaValue{{Name: "hs", Value: fmt.Appendf(nil, "epoch %d vote 1", e)}},
		MetaAfterTruncate: []eventlog.MetaValue{{Name: "isr", Value: fmt.Appendf(nil, "%d", last+1)}},
		Records: []eventlog.Record{{Offset: last + 1, Epoch: e, Type: "replica.isr", Time: int64(e),
			Data: []byte("isr 1,2,3 members 1,2,3")}},
		Epochs: []eventlog.EpochStart{{Epoch: e, Start: last + 1}},
	}
}

func TestBadgerLog_WriteSyncs(t *testing.T) {
	rec := &syncRecorder{}
	l := openBadger(t, t.TempDir(), eventlog.BadgerOptions{ObserveSync: rec.observe})
	steps := openBadger(t, t.TempDir(), eventlog.BadgerOptions{})
	require.NoError(t, l.Append(testRecords(1, 10, 1, 100)))
	require.NoError(t, steps.Append(testRecords(1, 10, 1, 100)))
	rec.take()
	tests := []struct {
		name string
		b    eventlog.Batch
		// observed is the number of ObserveSync calls: transactions
		// holding records.
		observed int
	}{
		{"epoch change", epochChange(2, 10), 1},
		{"hard state only (a vote)", eventlog.Batch{Meta: []eventlog.MetaValue{{Name: "hs", Value: []byte("vote")}}}, 0},
		{"records only", eventlog.Batch{Records: testRecords(12, 20, 2, 200)}, 1},
		{"epoch entry only", eventlog.Batch{Epochs: []eventlog.EpochStart{{Epoch: 3, Start: 32}}}, 0},
		{"truncation, epoch change and discard", func() eventlog.Batch {
			b := epochChange(4, 25)
			b.Truncate, b.TruncateAfter, b.DiscardRolledBack = true, 25, 3
			return b
		}(), 1},
		{"truncation at the end (a no-op) and records", eventlog.Batch{Truncate: true, TruncateAfter: 26,
			Records: testRecords(27, 3, 4, 10)}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, stepsBefore := commits(l), commits(steps)
			require.NoError(t, l.Write(tt.b))
			assert.Equal(t, uint64(1), commits(l)-before, "one synced transaction")
			assert.Len(t, rec.take(), tt.observed, "ObserveSync calls")

			_, err := eventlogtest.WriteSteps(steps, tt.b)
			require.NoError(t, err)
			t.Logf("step by step: %d synced transactions", commits(steps)-stepsBefore)
			assert.Equal(t, stateOf(t, steps), stateOf(t, l))
		})
	}
	t.Run("epoch change step by step", func(t *testing.T) {
		before := commits(steps)
		_, err := eventlogtest.WriteSteps(steps, epochChange(5, steps.Last()))
		require.NoError(t, err)
		assert.Equal(t, uint64(4), commits(steps)-before, "hard state, ISR index, record, epoch entry")
	})
	t.Run("invalid", func(t *testing.T) {
		before := commits(l)
		b := epochChange(5, l.Last())
		b.Epochs[0].Start += 2
		require.ErrorIs(t, l.Write(b), eventlog.ErrEpochOrder)
		assert.Equal(t, before, commits(l), "nothing committed")
		assert.Empty(t, rec.take())
	})
}

// TestBadgerLog_WriteObserveSyncReads checks that ObserveSync is called
// without the readers' lock, even by a Write that truncates and discards
// (which holds it exclusively while committing): a hook may read the log.
func TestBadgerLog_WriteObserveSyncReads(t *testing.T) {
	var seen []eventlog.Offset
	var l *eventlog.BadgerLog
	// Not openBadger: after a deadlock, Close would wait for ever.
	l, err := eventlog.OpenBadger(t.TempDir(), eventlog.BadgerOptions{ObserveSync: func(time.Duration) { seen = append(seen, l.Last()) }})
	require.NoError(t, err)
	require.NoError(t, l.Write(eventlog.Batch{Records: testRecords(1, 5, 1, 10)}))
	b := epochChange(2, 3)
	b.Truncate, b.TruncateAfter, b.DiscardRolledBack = true, 3, 1
	done := make(chan error, 1)
	go func() { done <- l.Write(b) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Write deadlocked calling ObserveSync")
	}
	assert.Equal(t, []eventlog.Offset{5, 4}, seen, "called once the log's state is updated")
	require.NoError(t, l.Close())
}

// TestBadgerLog_WriteLarge uses a tiny memtable, so that a batch with a
// truncation, records, epoch entries and a discard needs several
// transactions, and checks it against the same steps one by one, also
// after a reopen.
func TestBadgerLog_WriteLarge(t *testing.T) {
	opts := eventlog.BadgerOptions{MemTableSize: 1 << 20}
	dir := t.TempDir()
	rec := &syncRecorder{}
	wopts := opts
	wopts.ObserveSync = rec.observe
	l := openBadger(t, dir, wopts)
	steps := openBadger(t, t.TempDir(), opts)
	setup := []eventlog.Batch{
		{Records: testRecords(1, 2000, 1, 200), Epochs: []eventlog.EpochStart{{Epoch: 1, Start: 1}}},
		{Truncate: true, TruncateAfter: 1990}, // ten records in the rollback area
	}
	for _, b := range setup {
		_, err := eventlogtest.WriteSteps(steps, b)
		require.NoError(t, err)
		require.NoError(t, l.Write(b))
	}
	rec.take()
	b := eventlog.Batch{
		Meta:              []eventlog.MetaValue{{Name: "hs", Value: []byte("epoch 2")}},
		Truncate:          true,
		TruncateAfter:     500, // moves 1490 records
		MetaAfterTruncate: []eventlog.MetaValue{{Name: "isr", Value: []byte("501")}},
		Records:           testRecords(501, 2500, 2, 200),
		Epochs:            []eventlog.EpochStart{{Epoch: 2, Start: 501}, {Epoch: 3, Start: 3001}},
		DiscardRolledBack: 1200, // the ten older ones and some of those just moved
	}
	before := commits(l)
	require.NoError(t, l.Write(b))
	n := commits(l) - before
	assert.Greater(t, n, uint64(3), "a batch above the transaction limit is split")
	observed := len(rec.take())
	assert.Greater(t, observed, 1, "each transaction holding records is observed")
	assert.LessOrEqual(t, uint64(observed), n, "only transactions holding records are observed")
	t.Logf("%d transactions, %d of them holding records", n, observed)

	_, err := eventlogtest.WriteSteps(steps, b)
	require.NoError(t, err)
	want := stateOf(t, steps)
	assert.Equal(t, want, stateOf(t, l))
	require.NoError(t, l.Close())
	l = openBadger(t, dir, opts)
	assert.Equal(t, want, stateOf(t, l), "after a reopen")
}

// The Write crash test re-executes the test binary as a writer process
// (see TestMain).
const (
	writeKillEnv = "EVENTLOG_TEST_WRITE_KILL_DIR"
	writeModeEnv = "EVENTLOG_TEST_WRITE_KILL_MODE"
)

// writeModes are the crash test's two kinds of batches: small ones, each
// one transaction, and split ones, with records of 40 KB on a 1 MiB
// memtable (transactions of at most about 150 KB), several transactions
// each.
var writeModes = map[string]struct {
	opts       eventlog.BadgerOptions
	recordSize int
}{
	"small": {eventlog.BadgerOptions{}, 100},
	"split": {eventlog.BadgerOptions{MemTableSize: 1 << 20}, 40 << 10},
}

// crashBatch is the k-th batch (from 1) of the crash test's writer, for a
// log in l's state: a function of k and that state only, so that the test
// can compute what k batches leave. Its first step sets meta "batch" to k.
// Every tenth is an epoch change; every tenth from the fifth one forks the
// log (truncates one or two records), changes epoch and discards up to
// three rolled-back records (some just moved); the others append records,
// now and then discarding one.
func crashBatch(k int, l eventlog.Log, size int) eventlog.Batch {
	rng := rand.New(rand.NewPCG(uint64(k), 7))
	last, lastEpoch, hist := l.Last(), l.LastEpoch(), l.Epochs()
	rolled, err := l.RolledBack(1 << 30)
	if err != nil {
		panic(err)
	}
	next := max(lastEpoch, 1)
	if n := len(hist); n > 0 {
		next = max(lastEpoch, hist[n-1].Epoch) + 1
	}
	recs := func(from eventlog.Offset, n int, e eventlog.Epoch) []eventlog.Record {
		out := make([]eventlog.Record, n)
		for i := range out {
			data := make([]byte, size)
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			off := from + eventlog.Offset(i)
			out[i] = eventlog.Record{Offset: off, Epoch: e, Type: "chat.send", ClientID: "c", Seq: uint64(off), Time: int64(k), Data: data}
		}
		return out
	}
	b := eventlog.Batch{Meta: []eventlog.MetaValue{{Name: "batch", Value: []byte(strconv.Itoa(k))}}}
	switch {
	case k%10 == 0:
		ec := epochChange(next, last)
		b.Meta = append(b.Meta, ec.Meta...)
		b.MetaAfterTruncate, b.Records, b.Epochs = ec.MetaAfterTruncate, ec.Records, ec.Epochs
		b.Records = append(b.Records, recs(last+2, rng.IntN(4), next)...)
	case k%10 == 5 && last >= 3:
		after := last - 1 - eventlog.Offset(rng.IntN(2))
		b.Meta = append(b.Meta, eventlog.MetaValue{Name: "hs", Value: fmt.Appendf(nil, "epoch %d", next)})
		b.Truncate, b.TruncateAfter = true, after
		b.MetaAfterTruncate = []eventlog.MetaValue{{Name: "isr", Value: fmt.Appendf(nil, "%d", after+1)}}
		b.Records = recs(after+1, 1+rng.IntN(3), next)
		b.Epochs = []eventlog.EpochStart{{Epoch: next, Start: after + 1}}
		b.DiscardRolledBack = min(len(rolled)+int(last-after), 3)
	default:
		b.Records = recs(last+1, 1+rng.IntN(8), max(lastEpoch, 1))
		if len(rolled) > 0 && rng.IntN(4) == 0 {
			b.DiscardRolledBack = 1
		}
	}
	return b
}

// batchOf returns the batch number a log's meta records (0 if none).
func batchOf(l eventlog.Log) (int, error) {
	v, ok, err := l.Meta("batch")
	if err != nil || !ok {
		return 0, err
	}
	return strconv.Atoi(string(v))
}

// writeKillChild writes crashBatch after crashBatch to the log in dir,
// continuing from the batch it holds, printing each batch number once its
// Write has returned.
func writeKillChild(dir, mode string) int {
	m, ok := writeModes[mode]
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown mode", mode)
		return 1
	}
	l, err := eventlog.OpenBadger(dir, m.opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	k, err := batchOf(l)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	w := bufio.NewWriter(os.Stdout)
	for k++; ; k++ {
		if err := l.Write(crashBatch(k, l, m.recordSize)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintln(w, k)
		if err := w.Flush(); err != nil {
			return 1
		}
	}
}

// TestBadgerLog_WriteSurvivesSIGKILL kills a process in the middle of its
// Writes and checks what the log holds: every batch whose Write returned,
// and of the next one, all or nothing when it is one transaction ("small"),
// or the state after a prefix of its steps and records ("split").
func TestBadgerLog_WriteSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	for _, tc := range []struct {
		mode   string
		rounds int // kills on the same directory
		acks   int // batches acknowledged before each kill
		// delay bounds the random wait between the target acknowledgement
		// and the kill: about two batches' time, so that the kill falls
		// anywhere in a Write.
		delay time.Duration
	}{
		{"small", 6, 60, 15 * time.Millisecond},
		{"split", 1, 20, 60 * time.Millisecond},
		{"split", 1, 30, 60 * time.Millisecond},
		{"split", 1, 40, 60 * time.Millisecond},
	} {
		t.Run(fmt.Sprintf("%s-%d", tc.mode, tc.acks), func(t *testing.T) {
			dir := t.TempDir()
			m := writeModes[tc.mode]
			acked := 0
			for round := range tc.rounds {
				acked = runAndKill(t, dir, tc.mode, acked+tc.acks, time.Duration(rng.Int64N(int64(tc.delay))))
				l, err := eventlog.OpenBadger(dir, m.opts)
				require.NoError(t, err)
				got := stateOf(t, l)
				j, err := batchOf(l)
				require.NoError(t, err)
				require.NoError(t, l.Close())
				require.GreaterOrEqual(t, j, acked, "round %d: every acknowledged batch survives", round)

				// Replay the first j-1 batches in memory, then find which
				// prefix of batch j the log holds.
				mem := eventlog.NewMemoryLog()
				for k := 1; k < j; k++ {
					require.NoError(t, mem.Write(crashBatch(k, mem, m.recordSize)))
				}
				last := crashBatch(j, mem, m.recordSize)
				steps := eventlogtest.Steps(last, true)
				matched := -1
				for n := len(steps); n >= 1 && matched < 0; n-- {
					c := mem.Clone()
					for _, s := range steps[:n] {
						require.NoError(t, s.Do(c))
					}
					if assert.ObjectsAreEqual(stateOf(t, c), got) {
						matched = n
					}
				}
				require.Positive(t, matched, "round %d: the log holds batches 1..%d-1 and no prefix of batch %d's steps", round, j, j)
				if j == acked {
					require.Equal(t, len(steps), matched, "round %d: acknowledged batch %d is whole", round, j)
				}
				if tc.mode == "small" {
					require.Equal(t, len(steps), matched, "round %d: batch %d, one transaction, is all or nothing", round, j)
				}
				t.Logf("round %d: %d acknowledged, log holds %d batches, the last one's %d of %d steps", round, acked, j, matched, len(steps))
			}
		})
	}
}

// runAndKill runs a writer child on dir until it has acknowledged batch
// target, waits delay, kills it with SIGKILL and returns the last batch it
// acknowledged.
func runAndKill(t *testing.T, dir, mode string, target int, delay time.Duration) int {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), writeKillEnv+"="+dir, writeModeEnv+"="+mode)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	acked := 0
	sc := bufio.NewScanner(out)
	for acked < target && sc.Scan() {
		acked, err = strconv.Atoi(sc.Text())
		require.NoError(t, err)
	}
	require.GreaterOrEqual(t, acked, target, "child stopped early: %v", sc.Err())
	time.Sleep(delay)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	// What the child printed before it died was acknowledged too.
	for sc.Scan() {
		acked, err = strconv.Atoi(sc.Text())
		require.NoError(t, err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "child exit: %v", err)
	return acked
}

// BenchmarkWriteEpochChange writes a replica's epoch change (hard state,
// ISR index, the ISR record, the epoch entry) as one Write and as the four
// steps one by one. syncs/op counts Badger commits, each synced under
// SyncWrites. Every 256 epochs the log starts afresh (untimed), so that
// the growing epoch history does not weigh on the result.
func BenchmarkWriteEpochChange(b *testing.B) {
	for _, bc := range []struct {
		name  string
		write func(l *eventlog.BadgerLog, batch eventlog.Batch) error
	}{
		{"Write", (*eventlog.BadgerLog).Write},
		{"steps", func(l *eventlog.BadgerLog, batch eventlog.Batch) error {
			_, err := eventlogtest.WriteSteps(l, batch)
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var l *eventlog.BadgerLog
			var syncs uint64
			var start uint64
			reopen := func() {
				if l != nil {
					syncs += commits(l) - start
					if err := l.Close(); err != nil {
						b.Fatal(err)
					}
				}
				var err error
				if l, err = eventlog.OpenBadger(b.TempDir(), eventlog.BadgerOptions{}); err != nil {
					b.Fatal(err)
				}
				start = commits(l)
			}
			reopen()
			e, n := eventlog.Epoch(0), 0
			for b.Loop() {
				if e == 256 {
					b.StopTimer()
					reopen()
					e = 0
					b.StartTimer()
				}
				e++
				n++
				if err := bc.write(l, epochChange(e, l.Last())); err != nil {
					b.Fatal(err)
				}
			}
			syncs += commits(l) - start
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(syncs)/float64(n), "syncs/op")
		})
	}
}
