package chat

import (
	"fmt"

	"github.com/replichat/replichat/eventlog"
)

// Deleted data, and where it lingers. Deleting a message (its last view)
// or an account deletes its keys at once; what the state still holds of
// them afterwards is:
//   - the undo records of the batches that deleted them (and of batches
//     that wrote the records before), until those batches are stable
//     (SetStable) and dropped: at most undoDropPerBatch per applied batch,
//     or all at once by DropUndoThrough;
//   - the views of a deleted account, which purgeStep removes a bounded
//     number per applied record (PurgeBacklog counts the accounts left);
//   - the store's own copies: a Badger store keeps the old versions in its
//     files until its memtables are flushed and its levels compacted
//     (chatdb's DB.Purge forces that).
// chat/server's StateMachine drives all three so that a delete is gone
// from the disk within a bound (README, "Snapshots and compaction").

// undoDropPerTxn bounds the undo records one DropUndoThrough transaction
// deletes (each is a header and its pages: about 2 KiB per send).
const undoDropPerTxn = 256

// DropUndoThrough drops every undo record of a batch ending at or below
// off, at once rather than a few per applied batch, after raising the
// stable offset to off (SetStable): those batches can no longer be rolled
// back. It runs in transactions of a bounded size. Call it with Apply's
// exclusion (one goroutine at a time), like Apply: it changes the undo
// history's summary Apply keeps. It does nothing to a state that refuses
// to apply (LoadErr).
func (s *State) DropUndoThrough(off eventlog.Offset) error {
	if p := s.loadErr.Load(); p != nil {
		return nil
	}
	if off == 0 {
		return nil
	}
	s.SetStable(off)
	stable := s.stable.Load() // at least off
	for {
		if s.undo.known && (s.undo.meta.Records == 0 || s.undo.meta.Oldest > uint64(off)) {
			return nil
		}
		var (
			meta undoMeta
			done bool
		)
		err := s.store.Update(func(kv KV) error {
			m, err := s.meta(kv)
			if err != nil {
				return err
			}
			if m.Records == 0 || m.Oldest > uint64(off) {
				meta, done = m, true
				return nil
			}
			hs, err := scanUndoHeaders(kv, m.Oldest, undoDropPerTxn+1)
			if err != nil {
				return err
			}
			dropped := 0
			for _, h := range hs[:min(len(hs), undoDropPerTxn)] {
				if h.Last > uint64(off) {
					break
				}
				if err := deleteUndoRecord(kv, h); err != nil {
					return err
				}
				m.Records--
				m.Bytes -= h.Bytes
				dropped++
			}
			switch {
			case m.Records == 0:
				m.Oldest = 0
			case dropped < len(hs):
				m.Oldest = hs[dropped].Last
			default:
				return fmt.Errorf("%w: the undo meta counts %d more records than its headers", ErrInconsistent, m.Records)
			}
			m.Stable = max(m.Stable, stable)
			meta, done = m, dropped == 0
			return kv.Set(keyUndoMeta, m.encode())
		})
		if err != nil {
			s.undo.forget()
			return fmt.Errorf("drop the undo records through offset %d: %w", off, err)
		}
		s.undo.set(meta)
		if done {
			return nil
		}
	}
}

// PurgeBacklog returns how many deleted accounts still have views (history
// and queue entries, and the messages only they held) that later records
// will remove (purgeStep). Safe to call concurrently with Apply.
func (s *State) PurgeBacklog() (int, error) {
	var queue []uint64
	err := s.store.View(func(kv KV) error {
		_, err := getRec(kv, keyPurge, &queue)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read the purge backlog: %w", err)
	}
	return len(queue), nil
}
