package chat

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/replichat/replichat/eventlog"
)

// Undo records let a replica whose log was truncated below what its state
// applied (only after a partition forked the log) roll the state back in
// proportion to the records undone, instead of rebuilding it from the whole
// log.
//
// While it applies a batch that ends above the stable offset (SetStable:
// records every replica holds durably, which no truncation can reach), Apply
// writes, in the batch's transaction, an undo record: the batch's offset
// range and, for every key the batch wrote or deleted, its value before the
// batch or "absent". The write-back cache (txcache.go), through which every
// write of a batch goes, captures them; a key written without being read
// first is read once, at flush, only when undo is recorded. A batch at or
// below the stable offset records nothing: in a healthy cluster, where
// records are stable by the time they apply, undo costs nothing.
//
// Invariant: the undo records form chains of batches, each record's Start
// equal to the previous one's Last. The newest chain ends at Applied
// unless a batch was applied without undo since. RollbackTo checks the chain
// from Applied back to its target before it changes anything.
//
// The history is bounded: records at or below the stable offset are dropped
// (at most undoDropPerBatch per applied batch, so apply's cost stays
// bounded), and so are the oldest ones past the records or bytes of
// defaultUndoLimits. A rollback to before the oldest record kept fails
// with ErrUndoUnavailable, and the caller resets the state and replays the
// log.
//
// Undo records are local bookkeeping (their content depends on how this
// replica batched its applies and on when it learned the stable offset):
// they live under the local prefix "~", which Digest, WriteSnapshot,
// RestoreSnapshot and Check exclude. A restore clears them.

// undoLimits bound the undo history of a State.
type undoLimits struct {
	// maxRecords bounds the undo records kept: a batch each.
	maxRecords uint64
	// maxBytes bounds the total size of their pages.
	maxBytes uint64
	// txnBytes bounds the undo pages one rollback transaction restores
	// (at least one record whole, whatever its size: its batch fitted in
	// one transaction).
	txnBytes uint64
}

// defaultUndoLimits are a State's: a fork lasts as long as a partition,
// during which batches are small (one replica's own load), so 16384 records
// are minutes of them; a send's undo is about 2 KiB (the values of the ten
// keys it writes), so 64 MiB is some 30,000 sends, 10 s of a saturated
// primary cut off by a partition. Past them, a fork costs a reset and a
// replay, as it did before undo records.
func defaultUndoLimits() undoLimits {
	return undoLimits{maxRecords: 1 << 14, maxBytes: 64 << 20, txnBytes: 1 << 20}
}

const (
	// undoDropPerBatch bounds the undo records one applied batch drops.
	// One batch adds at most one, so the history shrinks to its bounds.
	undoDropPerBatch = 8
	// undoPageBytes bounds one page of an undo record (one value).
	undoPageBytes = 64 << 10
)

// undoMeta summarizes the undo history (key ~undo/meta).
type undoMeta struct {
	Records uint64 // undo records kept
	Bytes   uint64 // the total size of their pages
	// Oldest is the Last of the oldest record; 0 when Records == 0.
	Oldest uint64
	// Stable is the stable offset as last persisted: lazily, whenever the
	// meta changes, so that a restarted State records undo as before.
	Stable uint64
}

const undoMetaSize = 32

func (m undoMeta) encode() []byte {
	b := make([]byte, 0, undoMetaSize)
	return u64(u64(u64(u64(b, m.Records), m.Bytes), m.Oldest), m.Stable)
}

func decodeUndoMeta(v []byte) (undoMeta, error) {
	if len(v) != undoMetaSize {
		return undoMeta{}, fmt.Errorf("%w: undo meta of %d bytes", ErrInconsistent, len(v))
	}
	be := binary.BigEndian
	return undoMeta{Records: be.Uint64(v), Bytes: be.Uint64(v[8:]), Oldest: be.Uint64(v[16:]), Stable: be.Uint64(v[24:])}, nil
}

// undoHeader describes the undo record of one batch, which applied the
// records in (Start, Last]; Last is in its key (~undo/h/<Last>), and its
// pages are ~undo/p/<Last><0..Pages-1>.
type undoHeader struct {
	Last  uint64
	Start uint64
	Pages uint32
	Bytes uint64 // the total size of its pages
}

const undoHeaderSize = 20

func (h undoHeader) encode() []byte {
	b := u64(make([]byte, 0, undoHeaderSize), h.Start)
	b = binary.BigEndian.AppendUint32(b, h.Pages)
	return u64(b, h.Bytes)
}

func decodeUndoHeader(k, v []byte) (undoHeader, error) {
	last, err := suffixU64(k)
	if err != nil {
		return undoHeader{}, err
	}
	if len(v) != undoHeaderSize {
		return undoHeader{}, fmt.Errorf("%w: undo header %d of %d bytes", ErrInconsistent, last, len(v))
	}
	be := binary.BigEndian
	h := undoHeader{Last: last, Start: be.Uint64(v), Pages: be.Uint32(v[8:]), Bytes: be.Uint64(v[12:])}
	if h.Start >= h.Last {
		return undoHeader{}, fmt.Errorf("%w: undo record (%d, %d]", ErrInconsistent, h.Start, h.Last)
	}
	return h, nil
}

// undoEntry is one key's value before a batch: ok false if it was absent.
type undoEntry struct {
	key []byte
	val []byte
	ok  bool
	// known is false for a key written blind, until flush reads it.
	known bool
}

// encodeUndoPages packs entries into pages of about undoPageBytes: per
// entry, a 4-byte key length, the key, a byte (1: present), a 4-byte value
// length and the value.
func encodeUndoPages(entries []undoEntry) [][]byte {
	var (
		pages [][]byte
		page  []byte
	)
	for _, e := range entries {
		if len(page) > 0 && len(page)+9+len(e.key)+len(e.val) > undoPageBytes {
			pages, page = append(pages, page), nil
		}
		page = binary.BigEndian.AppendUint32(page, uint32(len(e.key)))
		page = append(page, e.key...)
		present := byte(0)
		if e.ok {
			present = 1
		}
		page = append(page, present)
		page = binary.BigEndian.AppendUint32(page, uint32(len(e.val)))
		page = append(page, e.val...)
	}
	if len(page) > 0 {
		pages = append(pages, page)
	}
	return pages
}

// decodeUndoPage calls fn for each entry of page, in order.
func decodeUndoPage(page []byte, fn func(key, val []byte, ok bool) error) error {
	bad := fmt.Errorf("%w: truncated undo page", ErrInconsistent)
	for len(page) > 0 {
		if len(page) < 4 {
			return bad
		}
		n := int(binary.BigEndian.Uint32(page))
		if len(page) < 4+n+5 {
			return bad
		}
		key, present := page[4:4+n], page[4+n] == 1
		page = page[4+n+1:]
		m := int(binary.BigEndian.Uint32(page))
		if len(page) < 4+m {
			return bad
		}
		val := page[4 : 4+m]
		page = page[4+m:]
		if err := fn(key, val, present); err != nil {
			return err
		}
	}
	return nil
}

// undoState is State's copy of the undo meta, owned by the goroutine that
// applies. Invariant: when known, meta is the store's ~undo/meta (zero if
// absent).
type undoState struct {
	meta  undoMeta
	known bool
}

func (u *undoState) set(m undoMeta) { u.meta, u.known = m, true }

// forget makes the next transaction read the meta from the store: a
// transaction failed, and may or may not have committed.
func (u *undoState) forget() { u.known = false }

// loadUndo reads the undo meta at start. A persisted meta means undo was
// being recorded: the State goes on recording it from the stable offset it
// persisted, until SetStable tells a newer one. A rollback marker is an
// *IncompleteRollbackError.
func (s *State) loadUndo(kv KV) error {
	m, found, err := readUndoMeta(kv)
	if err != nil {
		return err
	}
	s.undo.set(m)
	if found {
		s.stable.Store(m.Stable)
		s.stableSet.Store(true)
	}
	to, pending, err := pendingRollback(kv)
	if err == nil && pending {
		err = &IncompleteRollbackError{To: eventlog.Offset(to)}
	}
	return err
}

// pendingRollback returns the target of the rollback marker, if present.
func pendingRollback(kv KV) (uint64, bool, error) {
	v, ok, err := kv.Get(keyRollback)
	if err != nil || !ok {
		return 0, false, err
	}
	to, err := decodeU64(v)
	return to, true, err
}

func readUndoMeta(kv KV) (undoMeta, bool, error) {
	v, ok, err := kv.Get(keyUndoMeta)
	if err != nil || !ok {
		return undoMeta{}, false, err
	}
	m, err := decodeUndoMeta(v)
	return m, true, err
}

// meta returns the undo meta, from memory or kv.
func (s *State) meta(kv KV) (undoMeta, error) {
	if s.undo.known {
		return s.undo.meta, nil
	}
	m, _, err := readUndoMeta(kv)
	return m, err
}

// scanUndoHeaders returns the headers of the undo records ending at or
// after from, oldest first; at most limit of them unless limit is 0.
func scanUndoHeaders(kv KV, from uint64, limit int) ([]undoHeader, error) {
	var hs []undoHeader
	err := kv.Scan(prefixUndoHeader, undoHeaderKey(from), func(k, v []byte) (bool, error) {
		h, err := decodeUndoHeader(k, v)
		if err != nil {
			return false, err
		}
		hs = append(hs, h)
		return limit == 0 || len(hs) < limit, nil
	})
	return hs, err
}

// undoTxn is the undo bookkeeping of one apply transaction.
type undoTxn struct {
	s      *State
	meta   undoMeta
	stable uint64
	record bool
	// oldest are the oldest records, candidates to drop: up to
	// undoDropPerBatch+1, so that the one after the last dropped is known.
	oldest []undoHeader
}

// beginUndo starts the undo bookkeeping of a transaction: it reads what it
// may drop, before the batch writes anything.
func (s *State) beginUndo(kv KV, stable uint64, record bool) (*undoTxn, error) {
	m, err := s.meta(kv)
	if err != nil {
		return nil, err
	}
	u := &undoTxn{s: s, meta: m, stable: stable, record: record}
	if m.Records > 0 && (m.Oldest <= stable || record) {
		// Start at the oldest, past the tombstones of the dropped ones.
		if u.oldest, err = scanUndoHeaders(kv, m.Oldest, undoDropPerBatch+1); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// finish writes the undo record of the batch that applied (start, last]
// (none if it applied nothing or records no undo), drops what the bounds
// ask, and returns the meta to keep once the transaction commits. It
// writes to kv directly, after cache's flush: undo keys never go through
// the cache, and so never into an undo record.
func (u *undoTxn) finish(kv KV, cache *cachedKV, start, last uint64) (undoMeta, error) {
	m, changed := u.meta, false
	added := u.record && last > start
	if added {
		pages := encodeUndoPages(cache.undoEntries())
		h := undoHeader{Last: last, Start: start, Pages: uint32(len(pages))}
		for i, p := range pages {
			if err := kv.Set(undoPageKey(last, uint32(i)), p); err != nil {
				return m, err
			}
			h.Bytes += uint64(len(p))
		}
		if err := kv.Set(undoHeaderKey(last), h.encode()); err != nil {
			return m, err
		}
		if m.Records == 0 {
			m.Oldest = last
		}
		m.Records++
		m.Bytes += h.Bytes
		changed = true
	}
	// u.oldest holds every record but the new one when it is shorter
	// than the most the scan asked for; else the last of it is only there
	// to name the oldest after the drops.
	limit := len(u.oldest)
	if limit > undoDropPerBatch {
		limit = undoDropPerBatch
	}
	dropped := 0
	for ; dropped < limit; dropped++ {
		h := u.oldest[dropped]
		if h.Last > u.stable && m.Records <= u.s.undoLimits.maxRecords && m.Bytes <= u.s.undoLimits.maxBytes {
			break
		}
		if err := deleteUndoRecord(kv, h); err != nil {
			return m, err
		}
		m.Records--
		m.Bytes -= h.Bytes
		changed = true
	}
	if dropped > 0 {
		switch {
		case dropped < len(u.oldest):
			m.Oldest = u.oldest[dropped].Last
		case added:
			m.Oldest = last
		default:
			m.Oldest = 0
		}
	}
	if !changed {
		return m, nil
	}
	m.Stable = max(m.Stable, u.stable)
	return m, kv.Set(keyUndoMeta, m.encode())
}

func deleteUndoRecord(kv KV, h undoHeader) error {
	for p := range h.Pages {
		if err := kv.Delete(undoPageKey(h.Last, p)); err != nil {
			return err
		}
	}
	return kv.Delete(undoHeaderKey(h.Last))
}

// SetStable tells the state that every record up to off is durable on every
// replica, so that no truncation of the log can reach it: batches ending at
// or below it need no undo record, and those kept are dropped as applies go
// on. off only grows (a lower one is ignored). The first call starts the
// recording of undo records; a State never told records none, and
// RollbackTo then always fails. Safe to call concurrently with Apply.
func (s *State) SetStable(off eventlog.Offset) {
	for {
		cur := s.stable.Load()
		if uint64(off) <= cur || s.stable.CompareAndSwap(cur, uint64(off)) {
			break
		}
	}
	s.stableSet.Store(true)
}

// RollbackTo undoes the batches applied after offset after, newest first,
// and returns the offset the state then ends at: at most after, since a
// batch that straddles after is undone whole (the caller re-applies its
// records up to after from the log). If after >= Applied(), it does nothing
// and returns Applied().
//
// It fails with an error wrapping ErrUndoUnavailable, and changes nothing,
// when the undo history does not reach back to after: a batch above it was
// applied at or below the stable offset or before SetStable was first
// called, or its undo record was dropped to bound the history. The caller
// then resets the state (RestoreSnapshot of an empty state) and replays the
// log. Any other error leaves the rollback incomplete, as a crash does.
//
// Crash safety: each transaction undoes whole batches, newest first,
// together with the applied offset (a key each batch wrote) and the
// deletion of their undo records; the first writes a rollback marker
// (~undo/rollback, the target) and the last removes it. So whatever
// commits, the store holds exactly the state as of an earlier batch
// boundary, consistent, with the undo history that reaches back from it,
// and the marker says it is not done: NewState then reports an
// *IncompleteRollbackError (LoadErr), Apply and WriteSnapshot refuse to run,
// and RollbackTo (to the marker's target or below) finishes the job, as a
// reset does too. A store that does not sync its commits (chatdb) may lose
// all of them to a power loss, though, marker included, and then hold
// records the truncated log no longer has, unnoticed if the log has grown
// back past Applied() since. So, as with a reset, the caller syncs the
// store once RollbackTo returned (chat/server's StateMachine.SetSync), and
// until then either appends nothing to the truncated log or keeps its own
// durable note that a rollback to after is due, to call RollbackTo again
// at its next start (the undo records it needs are lost with the undoing,
// never before).
//
// It must not run concurrently with Apply. The in-memory caches are reset:
// what they held may have been undone.
func (s *State) RollbackTo(after eventlog.Offset) (eventlog.Offset, error) {
	pending := false
	if p := s.loadErr.Load(); p != nil {
		var ir *IncompleteRollbackError
		if !errors.As(*p, &ir) {
			return s.Applied(), *p
		}
		// Finish the rollback left incomplete: at least as far as it went.
		after, pending = min(after, ir.To), true
	}
	applied := s.applied.Load()
	if uint64(after) >= applied {
		if pending {
			if err := s.store.Update(func(kv KV) error { return kv.Delete(keyRollback) }); err != nil {
				return eventlog.Offset(applied), fmt.Errorf("roll back chat state to %d: %w", after, err)
			}
			s.loadErr.Store(nil)
		}
		return eventlog.Offset(applied), nil
	}
	var hs []undoHeader
	err := s.store.View(func(kv KV) error {
		var err error
		hs, err = scanUndoHeaders(kv, uint64(after)+1, 0)
		return err
	})
	if err == nil {
		err = checkUndoChain(hs, uint64(after), applied)
	}
	if err != nil {
		return eventlog.Offset(applied), fmt.Errorf("roll back chat state from %d to %d: %w", applied, after, err)
	}
	s.committed.reset()
	defer s.committed.reset()
	s.seqs.reset()
	defer s.seqs.reset()
	maxBytes := s.undoLimits.txnBytes
	for len(hs) > 0 {
		n, size := 1, hs[len(hs)-1].Bytes
		for n < len(hs) && size+hs[len(hs)-1-n].Bytes <= maxBytes {
			size += hs[len(hs)-1-n].Bytes
			n++
		}
		group := hs[len(hs)-n:]
		err := s.undoBatches(group, uint64(after), n == len(hs))
		if errors.Is(err, ErrTxnTooBig) && n > 1 {
			maxBytes = size / 2 // fewer records per transaction
			continue
		}
		if err != nil {
			s.undo.forget()
			s.reloadApplied()
			// The marker may be in the store: until a rollback completes
			// or a reset, nothing may be applied on top of this state.
			var incomplete error = &IncompleteRollbackError{To: after}
			s.loadErr.Store(&incomplete)
			return s.Applied(), fmt.Errorf("roll back chat state to %d: undo (%d, %d]: %w", after, group[0].Start, group[len(group)-1].Last, err)
		}
		hs = hs[:len(hs)-n]
	}
	s.loadErr.Store(nil)
	return s.Applied(), nil
}

// checkUndoChain verifies that hs (the undo records ending after `after`,
// oldest first) undo every batch from applied back to after or before.
func checkUndoChain(hs []undoHeader, after, applied uint64) error {
	if len(hs) == 0 {
		return fmt.Errorf("%w: no undo record after offset %d", ErrUndoUnavailable, after)
	}
	if newest := hs[len(hs)-1]; newest.Last != applied {
		return fmt.Errorf("%w: the newest undo record ends at %d, the state at %d", ErrUndoUnavailable, newest.Last, applied)
	}
	for i := 1; i < len(hs); i++ {
		if hs[i].Start != hs[i-1].Last {
			return fmt.Errorf("%w: no undo record for (%d, %d]", ErrUndoUnavailable, hs[i-1].Last, hs[i].Start)
		}
	}
	if hs[0].Start > after {
		return fmt.Errorf("%w: the undo history reaches back to %d only", ErrUndoUnavailable, hs[0].Start)
	}
	return nil
}

// undoBatches undoes the batches of group (consecutive, oldest first, the
// last one ending at the applied offset) in one transaction, which leaves
// the rollback marker (to target) in place unless it is the last.
func (s *State) undoBatches(group []undoHeader, target uint64, last bool) error {
	var meta undoMeta
	err := s.store.Update(func(kv KV) error {
		var err error
		if last {
			err = kv.Delete(keyRollback)
		} else {
			err = putU64(kv, keyRollback, target)
		}
		if err != nil {
			return err
		}
		m, err := s.meta(kv)
		if err != nil {
			return err
		}
		if cur, err := getU64(kv, keyApplied); err != nil || cur != group[len(group)-1].Last {
			if err == nil {
				err = fmt.Errorf("%w: applied offset %d, undo record ends at %d", ErrInconsistent, cur, group[len(group)-1].Last)
			}
			return err
		}
		for i := len(group) - 1; i >= 0; i-- {
			h := group[i]
			for p := range h.Pages {
				page, ok, err := kv.Get(undoPageKey(h.Last, p))
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("%w: undo record %d lacks page %d", ErrInconsistent, h.Last, p)
				}
				err = decodeUndoPage(page, func(k, v []byte, present bool) error {
					if present {
						return kv.Set(k, v)
					}
					return kv.Delete(k)
				})
				if err != nil {
					return err
				}
			}
			if err := deleteUndoRecord(kv, h); err != nil {
				return err
			}
			m.Records--
			m.Bytes -= h.Bytes
		}
		// Pair assertion: the batches' undo restored the applied offset
		// their first one started from.
		if cur, err := getU64(kv, keyApplied); err != nil || cur != group[0].Start {
			if err == nil {
				err = fmt.Errorf("%w: undo left applied offset %d, want %d", ErrInconsistent, cur, group[0].Start)
			}
			return err
		}
		if m.Records == 0 {
			m.Oldest = 0
		}
		meta = m
		return kv.Set(keyUndoMeta, m.encode())
	})
	if err != nil {
		return err
	}
	s.undo.set(meta)
	s.applied.Store(group[0].Start)
	return nil
}

// reloadApplied re-reads the applied offset after a failed transaction,
// which may or may not have committed.
func (s *State) reloadApplied() {
	_ = s.store.View(func(kv KV) error {
		off, err := getU64(kv, keyApplied)
		if err == nil {
			s.applied.Store(off)
		}
		return err
	})
}
