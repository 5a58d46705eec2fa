package chat

// Goal: undo records are written only for batches above the stable offset,
// dropped once stable and past their bounds, kept out of everything
// replicated (Digest, snapshots, Check), carried across a restart, and a
// rollback interrupted at any transaction leaves a consistent earlier state,
// marked unfinished (nothing applies on top of it), that a second
// RollbackTo finishes or a reset replaces.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog"
)

// undoLog returns a register of ann then n sends, ann to herself, and a
// few deliveries, as client "c".
func undoLog(t *testing.T, n int) []eventlog.Record {
	l := newHoleLog(t)
	for seq := uint64(1); seq <= uint64(n); seq++ {
		if seq%5 == 0 {
			l.add("c", seq, &DeliverEvent{UID: 1, MessageIDs: []uint64{MessageID("c", seq-1)}}, false)
			continue
		}
		l.send(seq, false)
	}
	return l.recs
}

// applyBatches applies recs to st in batches of size n.
func applyBatches(t *testing.T, st *State, recs []eventlog.Record, n int) {
	t.Helper()
	for i := 0; i < len(recs); i += n {
		require.NoError(t, st.Apply(recs[i:min(i+n, len(recs))]))
	}
}

// localKeys counts the undo headers and pages in st's store, and reports
// whether its meta exists.
func localKeys(t *testing.T, st *State) (headers, pages int, meta bool) {
	require.NoError(t, st.store.View(func(kv KV) error {
		return kv.Scan(prefixLocal, nil, func(k, _ []byte) (bool, error) {
			switch {
			case bytes.HasPrefix(k, prefixUndoHeader):
				headers++
			case bytes.HasPrefix(k, prefixUndoPage):
				pages++
			case bytes.Equal(k, keyUndoMeta):
				meta = true
			case bytes.Equal(k, keyRollback):
				t.Errorf("a rollback marker outside a rollback")
			default:
				t.Errorf("unexpected local key %q", k)
			}
			return true, nil
		})
	}))
	return headers, pages, meta
}

func replayed(t *testing.T, recs []eventlog.Record) []byte {
	t.Helper()
	st := NewState(NewMemStore())
	applyBatches(t, st, recs, 7)
	d, err := st.Digest()
	require.NoError(t, err)
	return d
}

func digestOf(t *testing.T, st *State) []byte {
	t.Helper()
	d, err := st.Digest()
	require.NoError(t, err)
	return d
}

func TestUndo_NothingAtOrBelowStable(t *testing.T) {
	recs := undoLog(t, 40)
	st := NewState(NewMemStore())
	st.SetStable(eventlog.Offset(len(recs)))
	applyBatches(t, st, recs, 4)
	h, p, meta := localKeys(t, st)
	assert.Zero(t, h+p, "no undo record for stable batches")
	assert.False(t, meta)

	never := NewState(NewMemStore())
	applyBatches(t, never, recs, 4)
	h, p, meta = localKeys(t, never)
	assert.Zero(t, h+p, "no undo record before SetStable")
	assert.False(t, meta)
}

func TestUndo_DroppedOnceStable(t *testing.T) {
	recs := undoLog(t, 60)
	st := NewState(NewMemStore())
	st.SetStable(0)
	applyBatches(t, st, recs[:40], 4)
	h, p, _ := localKeys(t, st)
	require.Equal(t, 10, h)
	require.Positive(t, p)
	assert.Equal(t, undoMeta{Records: 10, Bytes: st.undo.meta.Bytes, Oldest: 4, Stable: 0}, st.undo.meta)

	st.SetStable(50)
	require.NoError(t, st.Apply(recs[40:44]))
	h, _, _ = localKeys(t, st)
	assert.Equal(t, 10-undoDropPerBatch, h, "a bounded number per batch")
	require.NoError(t, st.Apply(recs[44:48]))
	h, p, _ = localKeys(t, st)
	assert.Zero(t, h+p)
	assert.Equal(t, undoMeta{Stable: 50}, st.undo.meta)
	require.NoError(t, st.Apply(recs[48:]), "above stable again: recorded")
	h, _, _ = localKeys(t, st)
	assert.Equal(t, 1, h)
}

func TestUndo_Bounded(t *testing.T) {
	recs := undoLog(t, 40)
	t.Run("records", func(t *testing.T) {
		st := NewState(NewMemStore())
		st.undoLimits.maxRecords = 3
		st.SetStable(0)
		applyBatches(t, st, recs, 4)
		h, _, _ := localKeys(t, st)
		assert.Equal(t, 3, h)
		// 41 records: the last three batches are (32, 36], (36, 40], (40, 41].
		require.Len(t, recs, 41)
		_, err := st.RollbackTo(31)
		assert.ErrorIs(t, err, ErrUndoUnavailable, "before the oldest record kept")
		got, err := st.RollbackTo(33)
		require.NoError(t, err)
		assert.Equal(t, eventlog.Offset(32), got, "three batches undone")
		assert.Equal(t, replayed(t, recs[:got]), digestOf(t, st))
	})
	t.Run("bytes", func(t *testing.T) {
		st := NewState(NewMemStore())
		st.undoLimits.maxBytes = 1
		st.SetStable(0)
		applyBatches(t, st, recs, 4)
		h, _, _ := localKeys(t, st)
		assert.Equal(t, 1, h, "the newest is kept, whatever its size")
	})
}

func TestUndo_ExcludedFromReplicatedState(t *testing.T) {
	recs := undoLog(t, 30)
	with := NewState(NewMemStore())
	with.SetStable(0)
	applyBatches(t, with, recs, 3)
	without := NewState(NewMemStore())
	applyBatches(t, without, recs, 5)
	h, _, _ := localKeys(t, with)
	require.Positive(t, h)
	assert.Equal(t, digestOf(t, without), digestOf(t, with))
	require.NoError(t, with.Check())

	var snap bytes.Buffer
	require.NoError(t, snapErr(with.WriteSnapshot(&snap)))
	var other bytes.Buffer
	require.NoError(t, snapErr(without.WriteSnapshot(&other)))
	assert.Equal(t, other.Bytes(), snap.Bytes(), "the snapshot holds no undo record")

	// A restore replaces the undo history too.
	require.NoError(t, with.RestoreSnapshot(bytes.NewReader(snap.Bytes())))
	h, p, meta := localKeys(t, with)
	assert.Zero(t, h+p)
	assert.False(t, meta)
	_, err := with.RollbackTo(eventlog.Offset(len(recs) - 1))
	assert.ErrorIs(t, err, ErrUndoUnavailable)
}

func TestUndo_SnapshotWithALocalKeyIsRefused(t *testing.T) {
	var b bytes.Buffer
	enc := msgpack.NewEncoder(&b)
	h := sha256.New()
	require.NoError(t, enc.Encode(&snapHeader{Format: snapFormat, Version: snapVersionPlain}))
	for _, e := range []snapEntry{{Key: []byte("applied"), Value: u64(nil, 1)}, {Key: []byte("~undo/meta"), Value: make([]byte, undoMetaSize)}} {
		hashEntry(h, e.Key, e.Value)
		require.NoError(t, enc.Encode(&e))
	}
	require.NoError(t, enc.Encode(&snapEntry{End: true, Sum: h.Sum(nil)}))
	err := NewState(NewMemStore()).RestoreSnapshot(&b)
	assert.ErrorIs(t, err, ErrBadSnapshot)
}

func TestUndo_AcrossARestart(t *testing.T) {
	recs := undoLog(t, 40)
	store := NewMemStore()
	st := NewState(store)
	st.SetStable(6)
	applyBatches(t, st, recs[:20], 4)
	st = NewState(store) // restarted: nobody has called SetStable yet
	assert.True(t, st.stableSet.Load(), "the persisted history keeps undo on")
	assert.Equal(t, uint64(6), st.stable.Load())
	applyBatches(t, st, recs[20:], 4)
	got, err := st.RollbackTo(10)
	require.NoError(t, err)
	assert.Equal(t, eventlog.Offset(8), got)
	assert.Equal(t, replayed(t, recs[:8]), digestOf(t, st))
	require.NoError(t, st.Check())
	applyBatches(t, st, recs[8:], 3)
	assert.Equal(t, replayed(t, recs), digestOf(t, st))
}

// crashStore fails its Updates from the fail-th on, as a process that died
// there: before its commit, or (committed) after it.
type crashStore struct {
	Store
	updates, fail int
	afterCommit   bool
}

var errCrash = errors.New("crash")

func (s *crashStore) Update(fn func(KV) error) error {
	s.updates++
	if s.fail == 0 || s.updates < s.fail {
		return s.Store.Update(fn)
	}
	if s.afterCommit {
		if err := s.Store.Update(fn); err != nil {
			return err
		}
	}
	return errCrash
}

func TestUndo_FailedRollbackThenReset(t *testing.T) {
	recs := undoLog(t, 20)
	cs := &crashStore{Store: NewMemStore()}
	st := NewState(cs)
	st.undoLimits.txnBytes = 1
	st.SetStable(0)
	applyBatches(t, st, recs, 4)
	cs.updates, cs.fail, cs.afterCommit = 0, 2, false
	_, err := st.RollbackTo(3)
	require.ErrorIs(t, err, errCrash)
	assert.ErrorIs(t, st.LoadErr(), ErrIncompleteRollback)
	assert.ErrorIs(t, st.Apply(recs), ErrIncompleteRollback)

	// The caller's fallback: a reset, then a replay.
	cs.fail = 0
	var empty bytes.Buffer
	require.NoError(t, snapErr(NewState(NewMemStore()).WriteSnapshot(&empty)))
	require.NoError(t, st.RestoreSnapshot(&empty))
	require.NoError(t, st.LoadErr())
	h, p, meta := localKeys(t, st)
	assert.Zero(t, h+p)
	assert.False(t, meta)
	applyBatches(t, st, recs[:3], 2)
	assert.Equal(t, replayed(t, recs[:3]), digestOf(t, st))
}

func TestUndo_CrashMidRollback(t *testing.T) {
	recs := undoLog(t, 48)
	require.Len(t, recs, 49)
	// Batches of 4 end at 4, 8, ..., 48, 49: the rollback to 9 ends at
	// these offsets after each of its transactions.
	ends := []eventlog.Offset{49, 48, 44, 40, 36}
	const cut = 9
	for _, afterCommit := range []bool{false, true} {
		for fail := 1; fail <= 4; fail++ {
			t.Run(fmt.Sprintf("txn %d, committed %v", fail, afterCommit), func(t *testing.T) {
				mem := NewMemStore()
				cs := &crashStore{Store: mem}
				st := NewState(cs)
				st.undoLimits.txnBytes = 1 // one batch per rollback transaction
				st.SetStable(0)
				applyBatches(t, st, recs, 4)
				cs.updates, cs.fail, cs.afterCommit = 0, fail, afterCommit
				_, err := st.RollbackTo(cut)
				require.ErrorIs(t, err, errCrash)

				// Restart on what the store holds.
				st = NewState(mem)
				committed := fail - 1
				if afterCommit {
					committed++
				}
				mid := st.Applied()
				assert.Equal(t, ends[committed], mid, "whole batches undone")
				require.NoError(t, st.Check())
				assert.Equal(t, replayed(t, recs[:mid]), digestOf(t, st), "a consistent state at %d", mid)
				if committed == 0 {
					require.NoError(t, st.LoadErr(), "nothing happened")
				} else {
					var ir *IncompleteRollbackError
					require.ErrorAs(t, st.LoadErr(), &ir, "the rollback is known to be unfinished")
					assert.Equal(t, eventlog.Offset(cut), ir.To)
					assert.ErrorIs(t, st.Apply(recs[mid:mid+1]), ErrIncompleteRollback, "nothing applies on top")
					assert.ErrorIs(t, snapErr(st.WriteSnapshot(&bytes.Buffer{})), ErrIncompleteRollback, "nor is it shipped")
				}

				// Finishing goes at least as far as the rollback aimed, even
				// asked for less.
				got, err := st.RollbackTo(cut + 20)
				require.NoError(t, err, "the undo history still reaches back")
				if committed > 0 {
					assert.Equal(t, eventlog.Offset(8), got)
				}
				assert.Equal(t, replayed(t, recs[:got]), digestOf(t, st))
				require.NoError(t, st.LoadErr())
				require.NoError(t, st.Check())
				require.NoError(t, st.Apply(recs[got:]), "done: applies again")
				assert.Equal(t, replayed(t, recs), digestOf(t, st))
			})
		}
	}
}

// snapErr drops the offset WriteSnapshot returns.
func snapErr(_ eventlog.Offset, err error) error { return err }
