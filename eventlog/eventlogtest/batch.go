package eventlogtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
)

// Step is one step of a Batch done with the single-step methods of Log: what
// eventlog.BatchWriter's Write must be equivalent to.
type Step struct {
	Name string
	Do   func(l eventlog.Log) error
}

// Steps returns the steps of b in the order batch.go gives: one per meta
// value, one for the truncation if b.Truncate, one per MetaAfterTruncate
// value, one for the records if there are any (one per record if
// perRecord: the states a crash in the middle of a split append may
// leave), one per epoch entry and one for the discard if
// b.DiscardRolledBack != 0.
func Steps(b eventlog.Batch, perRecord bool) []Step {
	var steps []Step
	meta := func(ms []eventlog.MetaValue) {
		for _, m := range ms {
			steps = append(steps, Step{"set meta " + m.Name, func(l eventlog.Log) error { return l.SetMeta(m.Name, m.Value) }})
		}
	}
	meta(b.Meta)
	if b.Truncate {
		steps = append(steps, Step{fmt.Sprintf("truncate after %d", b.TruncateAfter),
			func(l eventlog.Log) error { return l.Truncate(b.TruncateAfter) }})
	}
	meta(b.MetaAfterTruncate)
	switch {
	case perRecord:
		for i := range b.Records {
			steps = append(steps, Step{fmt.Sprintf("append %d", b.Records[i].Offset),
				func(l eventlog.Log) error { return l.Append(b.Records[i : i+1]) }})
		}
	case len(b.Records) > 0:
		steps = append(steps, Step{fmt.Sprintf("append %d at %d", len(b.Records), b.Records[0].Offset),
			func(l eventlog.Log) error { return l.Append(b.Records) }})
	}
	for _, e := range b.Epochs {
		steps = append(steps, Step{fmt.Sprintf("add epoch %d at %d", e.Epoch, e.Start),
			func(l eventlog.Log) error { return l.AddEpoch(e) }})
	}
	if n := b.DiscardRolledBack; n != 0 {
		steps = append(steps, Step{fmt.Sprintf("discard %d", n), func(l eventlog.Log) error { return l.DiscardRolledBack(n) }})
	}
	return steps
}

// WriteSteps does the steps of b (Steps(b, false)) one by one on l, stopping
// at the first error; done is the number that succeeded.
func WriteSteps(l eventlog.Log, b eventlog.Batch) (done int, err error) {
	for _, s := range Steps(b, false) {
		if err := s.Do(l); err != nil {
			return done, fmt.Errorf("%s: %w", s.Name, err)
		}
		done++
	}
	return done, nil
}

// prefixBatch returns the batch of the first n steps of b (Steps(b, false)).
func prefixBatch(b eventlog.Batch, n int) eventlog.Batch {
	var p eventlog.Batch
	take := func() bool {
		if n == 0 {
			return false
		}
		n--
		return true
	}
	for _, m := range b.Meta {
		if take() {
			p.Meta = append(p.Meta, m)
		}
	}
	if b.Truncate && take() {
		p.Truncate, p.TruncateAfter = true, b.TruncateAfter
	}
	for _, m := range b.MetaAfterTruncate {
		if take() {
			p.MetaAfterTruncate = append(p.MetaAfterTruncate, m)
		}
	}
	if len(b.Records) > 0 && take() {
		p.Records = b.Records
	}
	for _, e := range b.Epochs {
		if take() {
			p.Epochs = append(p.Epochs, e)
		}
	}
	if b.DiscardRolledBack != 0 && take() {
		p.DiscardRolledBack = b.DiscardRolledBack
	}
	return p
}

// sentinels are the errors a Write and its steps must agree on.
var sentinels = []error{eventlog.ErrClosed, eventlog.ErrCompacted, eventlog.ErrNotContiguous, eventlog.ErrCorrupt,
	eventlog.ErrEpochOrder, eventlog.ErrOutOfRange, eventlog.ErrInvalidMeta, eventlog.ErrReadOnly}

// requireSameSentinel checks that got wraps the same sentinel errors as want.
func requireSameSentinel(t *testing.T, want, got error, msg string) {
	t.Helper()
	require.Error(t, got, "%s: the steps fail with %v", msg, want)
	for _, s := range sentinels {
		require.Equal(t, errors.Is(want, s), errors.Is(got, s), "%s: steps: %v; Write: %v", msg, want, got)
	}
}

// apply does a valid batch to the model.
func (m *model) apply(b eventlog.Batch) {
	for _, v := range b.Meta {
		m.meta[v.Name] = slices.Clone(v.Value)
	}
	if b.Truncate {
		m.truncate(b.TruncateAfter)
	}
	for _, v := range b.MetaAfterTruncate {
		m.meta[v.Name] = slices.Clone(v.Value)
	}
	m.append(b.Records)
	m.epochs = append(m.epochs, b.Epochs...)
	m.rolled = m.rolled[b.DiscardRolledBack:]
}

// clone returns a copy of m that can change without changing m.
func (m *model) clone() *model {
	c := *m
	c.all = slices.Clip(m.all)
	c.epochs = slices.Clip(m.epochs)
	c.rolled = slices.Clip(m.rolled)
	c.meta = make(map[string][]byte, len(m.meta))
	for k, v := range m.meta {
		c.meta[k] = v
	}
	return &c
}

// genBatch returns a random batch for a log in the state m: each step is
// present or not at random and valid, unless invalid is set, when one of
// the steps present is made invalid (which a gap-free prefix of it stays).
func genBatch(rng *rand.Rand, m *model, invalid bool) eventlog.Batch {
	c := m.clone()
	var b eventlog.Batch
	// bad is the step kind made invalid (0 none).
	bad := 0
	if invalid {
		bad = 1 + rng.IntN(6)
	}
	metas := func(kind int, names ...string) []eventlog.MetaValue {
		var ms []eventlog.MetaValue
		for range rng.IntN(3) {
			v := make([]byte, rng.IntN(30))
			for i := range v {
				v[i] = byte(rng.Uint32())
			}
			ms = append(ms, eventlog.MetaValue{Name: names[rng.IntN(len(names))], Value: v})
		}
		if bad == kind {
			bv := eventlog.MetaValue{Name: "not valid", Value: []byte{1}}
			if rng.IntN(2) == 0 {
				bv = eventlog.MetaValue{Name: names[0], Value: make([]byte, eventlog.MaxMetaValue+1)}
			}
			ms = slices.Insert(ms, rng.IntN(len(ms)+1), bv)
		}
		return ms
	}
	b.Meta = metas(1, "hs", "vote", "k0")
	if bad == 2 || rng.IntN(100) < 35 {
		b.Truncate = true
		// [first-1, last+1]: everything retained, part of it, or nothing.
		b.TruncateAfter = c.first - 1 + eventlog.Offset(rng.IntN(int(c.last())-int(c.first)+3))
		if bad == 2 {
			if c.first < 2 {
				b.TruncateAfter = c.last() + 1 // no invalid truncation: a no-op
			} else {
				b.TruncateAfter = c.first - 2 - eventlog.Offset(rng.IntN(int(c.first-1)))
			}
		}
		c.truncate(b.TruncateAfter)
	}
	b.MetaAfterTruncate = metas(3, "isr", "k0")
	if bad == 4 || rng.IntN(100) < 60 {
		b.Records = c.next(rng, 1+rng.IntN(5), eventlog.Epoch(rng.IntN(2)))
		if bad == 4 {
			switch i := rng.IntN(len(b.Records)); rng.IntN(3) {
			case 0:
				b.Records[i].Offset++
			case 1:
				b.Records[i].Offset--
			default:
				if c.lastEpoch() > 0 {
					b.Records[0].Epoch = c.lastEpoch() - 1
				} else {
					b.Records = b.Records[1:] // offsets start past Last()+1
					if len(b.Records) == 0 {
						b.Records = c.next(rng, 1, 0)
						b.Records[0].Offset += 2
					}
				}
			}
		}
		c.append(b.Records)
	}
	if bad == 5 || rng.IntN(100) < 40 {
		n := 1 + rng.IntN(2)
		for i := range n {
			e := eventlog.EpochStart{Epoch: c.lastEpoch() + 1, Start: 1}
			if k := len(c.epochs); k > 0 {
				e.Epoch = max(e.Epoch, c.epochs[k-1].Epoch+1)
				e.Start = c.epochs[k-1].Start
			}
			e.Start += eventlog.Offset(rng.IntN(int(c.last() + 2 - e.Start)))
			if bad == 5 && i == n-1 {
				switch rng.IntN(3) {
				case 0:
					e.Start = c.last() + 2
				case 1:
					e.Epoch = 0
				default:
					if k := len(c.epochs); k > 0 {
						e.Epoch = c.epochs[k-1].Epoch
					} else {
						e.Start = 0
					}
				}
			}
			b.Epochs = append(b.Epochs, e)
			c.epochs = append(c.epochs, e)
		}
	}
	if bad == 6 || rng.IntN(100) < 30 {
		b.DiscardRolledBack = rng.IntN(len(c.rolled) + 1)
		if bad == 6 {
			b.DiscardRolledBack = len(c.rolled) + 1 + rng.IntN(3)
			if rng.IntN(3) == 0 {
				b.DiscardRolledBack = -1
			}
		}
	}
	return b
}

// describe summarizes a batch for failure messages.
func describe(b eventlog.Batch) string {
	var s []string
	for _, st := range Steps(b, false) {
		s = append(s, st.Name)
	}
	return fmt.Sprintf("%q", s)
}

// batchWriter returns l as a BatchWriter, skipping the test if it is not one.
func batchWriter(t *testing.T, l eventlog.Log) eventlog.BatchWriter {
	t.Helper()
	bw, ok := l.(eventlog.BatchWriter)
	if !ok {
		t.Skipf("%T does not implement eventlog.BatchWriter", l)
	}
	return bw
}

// metaOf returns l's values for names (nil for an absent one).
func metaOf(t *testing.T, l eventlog.Log, names ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, n := range names {
		v, ok, err := l.Meta(n)
		require.NoError(t, err)
		if ok {
			out[n] = v
		}
	}
	return out
}

// metaNames are every meta name the batch tests write.
var metaNames = []string{"hs", "vote", "k0", "isr"}

// requireSameLogs checks that a and b hold the same records, epoch history,
// rollback area and meta values.
func requireSameLogs(t *testing.T, a, b eventlog.Log, msg string) {
	t.Helper()
	require.Equal(t, snap(t, a), snap(t, b), msg)
	require.Equal(t, metaOf(t, a, metaNames...), metaOf(t, b, metaNames...), "%s: meta", msg)
}

// testWriteSubsets writes a batch with each subset of the six steps, and
// the same steps one by one to a second log, comparing the two each time.
func testWriteSubsets(t *testing.T, open func(t *testing.T) eventlog.Log) {
	lw, ls := open(t), open(t)
	bw := batchWriter(t, lw)
	// A log with records in two epochs, an epoch history and a rollback area.
	for _, l := range []eventlog.Log{lw, ls} {
		require.NoError(t, l.AddEpoch(es(1, 1)))
		require.NoError(t, l.Append(records(1, 10, 1)))
		require.NoError(t, l.AddEpoch(es(2, 11)))
		require.NoError(t, l.Append(records(11, 10, 2)))
		require.NoError(t, l.Truncate(18))
	}
	for mask := range 1 << 6 {
		has := func(i int) bool { return mask&(1<<i) != 0 }
		var b eventlog.Batch
		last, lastEpoch, hist := ls.Last(), ls.LastEpoch(), ls.Epochs()
		if has(0) {
			b.Meta = []eventlog.MetaValue{{Name: "hs", Value: fmt.Appendf(nil, "hs-%d", mask)}}
		}
		if has(1) {
			b.Truncate, b.TruncateAfter = true, last-2
			last = b.TruncateAfter
			lastEpoch = readAll(t, ls, 1<<20)[last-ls.First()].Epoch
			for len(hist) > 0 && hist[len(hist)-1].Start > last {
				hist = hist[:len(hist)-1]
			}
		}
		if has(2) {
			b.MetaAfterTruncate = []eventlog.MetaValue{{Name: "isr", Value: fmt.Appendf(nil, "isr-%d", mask)}}
		}
		// The epoch change of a new primary: records in a new epoch and the
		// entry that starts it at the first of them.
		epoch := lastEpoch + 1
		if n := len(hist); n > 0 {
			epoch = max(epoch, hist[n-1].Epoch+1)
		}
		if has(3) {
			b.Records = records(last+1, 3, epoch)
		}
		if has(4) {
			b.Epochs = []eventlog.EpochStart{es(epoch, last+1), es(epoch+1, last+1+eventlog.Offset(len(b.Records)))}
		}
		if has(5) {
			rolled, err := ls.RolledBack(1 << 20)
			require.NoError(t, err)
			b.DiscardRolledBack = min(len(rolled)+2, 3) // some of those the truncation moves, if any
			if !has(1) {
				b.DiscardRolledBack = min(len(rolled), 1)
			}
		}
		msg := fmt.Sprintf("mask %06b %s", mask, describe(b))
		_, err := WriteSteps(ls, b)
		require.NoError(t, err, msg)
		require.NoError(t, bw.Write(b), msg)
		requireSameLogs(t, ls, lw, msg)
	}
	require.Greater(t, lw.Last(), eventlog.Offset(20), "the batches appended")
}

// testWriteInvalid checks that invalid batches fail with the error of their
// first invalid step and write nothing, not even the valid steps before it.
func testWriteInvalid(t *testing.T, l eventlog.Log) {
	bw := batchWriter(t, l)
	require.NoError(t, l.AddEpoch(es(1, 1)))
	require.NoError(t, l.Append(records(1, 10, 1)))
	require.NoError(t, l.AddEpoch(es(3, 11)))
	require.NoError(t, l.Append(records(11, 5, 3)))
	require.NoError(t, l.Truncate(14)) // one record in the rollback area
	require.NoError(t, l.Compact(2))
	require.NoError(t, l.SetMeta("hs", []byte("before")))
	hs := []eventlog.MetaValue{{Name: "hs", Value: []byte("after")}}
	// The log: records 3..14 (epochs 1, then 3 from 11), history
	// [1@1 3@11], rollback area [15].
	tests := []struct {
		name string
		b    eventlog.Batch
		want error
	}{
		{"meta name", eventlog.Batch{Meta: []eventlog.MetaValue{hs[0], {Name: "a/b"}}}, eventlog.ErrInvalidMeta},
		{"meta value after truncation", eventlog.Batch{Meta: hs, Truncate: true, TruncateAfter: 12,
			MetaAfterTruncate: []eventlog.MetaValue{{Name: "isr", Value: make([]byte, eventlog.MaxMetaValue+1)}}}, eventlog.ErrInvalidMeta},
		{"truncate compacted", eventlog.Batch{Meta: hs, Truncate: true, TruncateAfter: 1}, eventlog.ErrCompacted},
		{"records gap", eventlog.Batch{Meta: hs, Records: records(16, 1, 3)}, eventlog.ErrNotContiguous},
		{"records after the old end of a truncated log", eventlog.Batch{Truncate: true, TruncateAfter: 12,
			Records: records(15, 1, 3)}, eventlog.ErrNotContiguous},
		{"records epoch below the log's", eventlog.Batch{Records: records(15, 1, 2)}, eventlog.ErrNotContiguous},
		{"records epoch below the truncated log's", eventlog.Batch{Truncate: true, TruncateAfter: 12,
			Records: records(13, 1, 2)}, eventlog.ErrNotContiguous},
		{"epoch start past the appended records", eventlog.Batch{Meta: hs, Records: records(15, 2, 3),
			Epochs: []eventlog.EpochStart{es(4, 18)}}, eventlog.ErrEpochOrder},
		{"epoch start past a truncation", eventlog.Batch{Truncate: true, TruncateAfter: 12,
			Epochs: []eventlog.EpochStart{es(4, 15)}}, eventlog.ErrEpochOrder},
		{"epoch not newer than the batch's previous", eventlog.Batch{Records: records(15, 1, 3),
			Epochs: []eventlog.EpochStart{es(5, 15), es(5, 16)}}, eventlog.ErrEpochOrder},
		{"epoch not newer than one the truncation keeps", eventlog.Batch{Truncate: true, TruncateAfter: 9,
			Epochs: []eventlog.EpochStart{es(1, 10)}}, eventlog.ErrEpochOrder},
		{"discard more than the area holds", eventlog.Batch{Meta: hs, Records: records(15, 1, 3),
			DiscardRolledBack: 2}, eventlog.ErrOutOfRange},
		{"discard more than the truncation leaves", eventlog.Batch{Truncate: true, TruncateAfter: 12,
			DiscardRolledBack: 4}, eventlog.ErrOutOfRange},
		{"discard negative", eventlog.Batch{Meta: hs, DiscardRolledBack: -1}, eventlog.ErrOutOfRange},
	}
	before := snap(t, l)
	beforeMeta := metaOf(t, l, metaNames...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := bw.Write(tt.b)
			require.ErrorIs(t, err, tt.want)
			assert.Equal(t, before, snap(t, l), "nothing written")
			assert.Equal(t, beforeMeta, metaOf(t, l, metaNames...), "no meta written")
		})
	}
	// The limits themselves are valid: an epoch starting after the last
	// appended record, and discarding the whole area, moved records included.
	require.NoError(t, bw.Write(eventlog.Batch{Truncate: true, TruncateAfter: 12, Records: records(13, 2, 4),
		Epochs: []eventlog.EpochStart{es(4, 13), es(5, 15)}, DiscardRolledBack: 3}))
	assert.Equal(t, []eventlog.EpochStart{es(1, 1), es(3, 11), es(4, 13), es(5, 15)}, l.Epochs())
	assert.Empty(t, rolledAll(t, l))
	assert.Equal(t, eventlog.Offset(14), l.Last())
	assert.Equal(t, eventlog.Epoch(4), l.LastEpoch())
}

// testWriteClosed checks Write on a closed log: the error of its first step.
func testWriteClosed(t *testing.T, l eventlog.Log) {
	bw := batchWriter(t, l)
	require.NoError(t, l.Append(records(1, 2, 1)))
	require.NoError(t, l.Close())
	for _, b := range []eventlog.Batch{
		{Meta: []eventlog.MetaValue{{Name: "hs", Value: []byte{1}}}},
		{Truncate: true, TruncateAfter: 5},
		{Records: records(3, 1, 1)},
		{Epochs: []eventlog.EpochStart{es(1, 1)}},
		{DiscardRolledBack: 1},
	} {
		assert.ErrorIs(t, bw.Write(b), eventlog.ErrClosed, describe(b))
	}
	// SetMeta checks its arguments first: so does a Write that begins with it.
	err := bw.Write(eventlog.Batch{Meta: []eventlog.MetaValue{{Name: ""}}, Records: records(3, 1, 1)})
	assert.ErrorIs(t, err, eventlog.ErrInvalidMeta)
	assert.NoError(t, bw.Write(eventlog.Batch{}), "an empty batch has no step to fail")
}

// testWriteDoesNotRetain checks that Write copies what it keeps, and wakes
// Wait as Append does.
func testWriteDoesNotRetain(t *testing.T, l eventlog.Log) {
	bw := batchWriter(t, l)
	done := make(chan error, 1)
	go func() { done <- l.Wait(t.Context(), 1) }()
	b := eventlog.Batch{Meta: []eventlog.MetaValue{{Name: "hs", Value: []byte("hs")}},
		MetaAfterTruncate: []eventlog.MetaValue{{Name: "isr", Value: []byte("isr")}},
		Records:           records(1, 2, 1), Epochs: []eventlog.EpochStart{es(1, 1)}}
	want := records(1, 2, 1)
	require.NoError(t, bw.Write(b))
	require.NoError(t, <-done, "Write wakes Wait")
	b.Meta[0].Value[0] = 'X'
	b.MetaAfterTruncate[0].Value[0] = 'X'
	b.Records[0].Data[0]++
	b.Epochs[0].Epoch = 9
	assert.Equal(t, want, readAll(t, l, 1<<20), "Write must not retain the caller's records")
	assert.Equal(t, map[string][]byte{"hs": []byte("hs"), "isr": []byte("isr")}, metaOf(t, l, "hs", "isr"))
	assert.Equal(t, []eventlog.EpochStart{es(1, 1)}, l.Epochs())
}

// testWriteProperty writes random batches, valid and invalid, with Write to
// one log and step by step to another, and compares both with the model
// after each: Write must have the steps' result, and fail with their error
// writing nothing. After a failure, the valid steps before the failing one
// are written (with Write) to bring the logs together again.
func testWriteProperty(t *testing.T, open func(t *testing.T) eventlog.Log) {
	lw, ls := open(t), open(t)
	bw := batchWriter(t, lw)
	batches := 300
	if testing.Short() {
		batches = 100
	}
	rng := rand.New(rand.NewPCG(3, 0x5eed))
	m := newModel()
	// What the run covered: batches failed, truncations that removed
	// records, discards and epoch entries written, by valid batches.
	var failed, truncated, discarded, epochs int
	for i := range batches {
		if rng.IntN(100) < 8 && m.last() >= m.first {
			upto := m.first + eventlog.Offset(rng.IntN(int(m.last()-m.first)+1))
			require.NoError(t, lw.Compact(upto))
			require.NoError(t, ls.Compact(upto))
			m.compact(upto)
		}
		b := genBatch(rng, m, rng.IntN(100) < 30)
		msg := fmt.Sprintf("batch %d %s", i, describe(b))
		done, errS := WriteSteps(ls, b)
		errW := bw.Write(b)
		if errS == nil {
			require.NoError(t, errW, msg)
			if b.Truncate && b.TruncateAfter < m.last() {
				truncated++
			}
			if b.DiscardRolledBack > 0 {
				discarded++
			}
			epochs += len(b.Epochs)
			m.apply(b)
		} else {
			failed++
			requireSameSentinel(t, errS, errW, msg)
			assertMatches(t, m, lw, msg+": nothing written")
			m.apply(prefixBatch(b, done))
			require.NoError(t, bw.Write(prefixBatch(b, done)), "%s: its first %d steps", msg, done)
		}
		assertMatches(t, m, lw, msg+": Write")
		assertMatches(t, m, ls, msg+": steps")
		requireSameLogs(t, ls, lw, msg)
	}
	assert.Greater(t, failed, batches/10, "invalid batches were tried")
	assert.Greater(t, truncated, batches/20, "truncations were written")
	assert.Greater(t, discarded, batches/20, "discards were written")
	assert.Greater(t, epochs, batches/10, "epoch entries were written")
	t.Logf("%d batches: %d failed; %d truncations, %d discards, %d epoch entries written; last %d",
		batches, failed, truncated, discarded, epochs, lw.Last())
}

// durableWrite writes random valid batches, reopening the log now and then,
// and checks it against the model after each batch and each reopen.
func durableWrite(t *testing.T, reopen func(eventlog.Log) eventlog.Log, l eventlog.Log) {
	batchWriter(t, l)
	batches := 150
	if testing.Short() {
		batches = 50
	}
	rng := rand.New(rand.NewPCG(4, 0x5eed))
	m := newModel()
	for i := range batches {
		b := genBatch(rng, m, false)
		msg := fmt.Sprintf("batch %d %s", i, describe(b))
		require.NoError(t, l.(eventlog.BatchWriter).Write(b), msg)
		m.apply(b)
		assertMatches(t, m, l, msg)
		if rng.IntN(100) < 15 {
			l = reopen(l)
			assertMatches(t, m, l, msg+": reopened")
		}
	}
	require.NoError(t, l.Close())
}

// durableWriteEpochChange checks that every part of an epoch change and of
// a truncating batch survives a reopen.
func durableWriteEpochChange(t *testing.T, reopen func(eventlog.Log) eventlog.Log, l eventlog.Log) {
	batchWriter(t, l)
	write := func(b eventlog.Batch) {
		t.Helper()
		require.NoError(t, l.(eventlog.BatchWriter).Write(b))
		want, wantMeta := snap(t, l), metaOf(t, l, metaNames...)
		l = reopen(l)
		require.Equal(t, want, snap(t, l))
		require.Equal(t, wantMeta, metaOf(t, l, metaNames...))
	}
	write(eventlog.Batch{Meta: []eventlog.MetaValue{{Name: "hs", Value: []byte("epoch 1")}},
		MetaAfterTruncate: []eventlog.MetaValue{{Name: "isr", Value: []byte("1")}},
		Records:           records(1, 1, 1), Epochs: []eventlog.EpochStart{es(1, 1)}})
	recs := records(2, 9, 1) // offsets 2..10
	write(eventlog.Batch{Records: recs})
	// A backup that follows a new primary: its log forked after 6.
	write(eventlog.Batch{Meta: []eventlog.MetaValue{{Name: "hs", Value: []byte("epoch 2")}},
		Truncate: true, TruncateAfter: 6, MetaAfterTruncate: []eventlog.MetaValue{{Name: "isr", Value: []byte("7")}},
		Records: records(7, 2, 2), Epochs: []eventlog.EpochStart{es(2, 7)}})
	assert.Equal(t, recs[5:], rolledAll(t, l))
	write(eventlog.Batch{Records: records(9, 1, 2), DiscardRolledBack: 3})
	assert.Equal(t, recs[8:], rolledAll(t, l))
	assert.Equal(t, []eventlog.EpochStart{es(1, 1), es(2, 7)}, l.Epochs())
	require.NoError(t, l.Close())
}
