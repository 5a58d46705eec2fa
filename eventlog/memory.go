package eventlog

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// MemoryLog is a Log kept in memory, for tests and the deterministic
// simulator. It starts no goroutines and reads no clock; "durable" means
// "stored in this value", and [MemoryLog.Clone] takes a copy of that storage
// (a crashed node's disk).
//
// Its zero value is not usable; create one with NewMemoryLog.
type MemoryLog struct {
	mu sync.Mutex
	// Invariant: records.at(i).rec.Offset == first+i, and
	// first+records.len()-1 == last. The record values, and the bytes their
	// Data points to, are never modified once stored: Clone shares them.
	records recordStore
	// first is the offset of records[0] (or last+1 when records is empty).
	first Offset
	// baseEpoch is the epoch of offset first-1 (set by Compact and Restore),
	// so LastEpoch stays known when every record has been compacted away.
	baseEpoch Epoch
	epochs    []EpochStart
	rolled    []Record
	meta      map[string][]byte
	closed    bool
	// changed is closed and replaced whenever last grows or the log closes,
	// to wake Wait without a goroutine.
	changed chan struct{}
}

// memRecord is a stored record with its encoded size, computed once on
// Append so that Read batches by the same byte count as BadgerLog.
type memRecord struct {
	rec  Record
	size int
}

var (
	_ Log         = (*MemoryLog)(nil)
	_ BatchWriter = (*MemoryLog)(nil)
)

// NewMemoryLog returns an empty log: First() == 1, Last() == 0.
func NewMemoryLog() *MemoryLog {
	return &MemoryLog{records: newRecordStore(memChunk), first: 1, meta: map[string][]byte{}, changed: make(chan struct{})}
}

// Clone returns an independent copy of the log's stored state (records,
// epoch history, rollback area, meta), as a crash would leave it on disk.
// The copy is open even if m is closed, and has no waiters.
//
// Clone costs O(records/256 + epochs + meta): the copies share the record
// chunks copy-on-write (see recordStore), and the rollback area's array,
// clipped (len == cap) so that the next append to either copy reallocates
// instead of writing into the shared array. The first write to either copy
// afterwards copies at most one chunk of 256 records.
func (m *MemoryLog) Clone() *MemoryLog {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rolled = slices.Clip(m.rolled)
	return &MemoryLog{
		records:   m.records.clone(),
		first:     m.first,
		baseEpoch: m.baseEpoch,
		epochs:    slices.Clone(m.epochs),
		rolled:    m.rolled,
		meta:      maps.Clone(m.meta),
		changed:   make(chan struct{}),
	}
}

// last returns the offset of the last record. Caller holds mu.
func (m *MemoryLog) last() Offset { return m.first + Offset(m.records.len()) - 1 }

// lastEpoch returns the epoch of the last record. Caller holds mu.
func (m *MemoryLog) lastEpoch() Epoch {
	if n := m.records.len(); n > 0 {
		return m.records.at(n - 1).rec.Epoch
	}
	return m.baseEpoch
}

// notify wakes every Wait. Caller holds mu.
func (m *MemoryLog) notify() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Append implements Log.
func (m *MemoryLog) Append(recs []Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("append: %w", ErrClosed)
	}
	if err := checkAppend(recs, m.last(), m.lastEpoch()); err != nil {
		return err
	}
	stored := make([]memRecord, len(recs))
	for i, r := range recs {
		b, err := EncodeRecord(r)
		if err != nil {
			return fmt.Errorf("append offset %d: %w", r.Offset, err)
		}
		stored[i] = memRecord{rec: cloneRecord(r), size: len(b)}
	}
	for _, r := range stored {
		m.records.append(r)
	}
	m.notify()
	return nil
}

// Read implements Log.
func (m *MemoryLog) Read(from Offset, maxBytes int) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("read from %d: %w", from, ErrClosed)
	}
	if from < m.first {
		return nil, fmt.Errorf("read from %d (first %d): %w", from, m.first, ErrCompacted)
	}
	var out []Record
	total := 0
	for i := int(from - m.first); i < m.records.len() && (len(out) == 0 || total < maxBytes); i++ {
		r := m.records.at(i)
		out = append(out, cloneRecord(r.rec))
		total += r.size
	}
	if out == nil {
		out = []Record{}
	}
	return out, nil
}

// First implements Log.
func (m *MemoryLog) First() Offset {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.first
}

// Last implements Log.
func (m *MemoryLog) Last() Offset {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last()
}

// LastEpoch implements Log.
func (m *MemoryLog) LastEpoch() Epoch {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastEpoch()
}

// Truncate implements Log.
func (m *MemoryLog) Truncate(after Offset) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("truncate after %d: %w", after, ErrClosed)
	}
	if after >= m.last() {
		return nil
	}
	if after+1 < m.first {
		return fmt.Errorf("truncate after %d (first %d): %w", after, m.first, ErrCompacted)
	}
	m.truncate(after)
	return nil
}

// truncate moves the records after after (in [first-1, last)) to the
// rollback area and drops the epoch entries starting after it. Caller holds
// mu.
func (m *MemoryLog) truncate(after Offset) {
	keep := int(after + 1 - m.first)
	for i := keep; i < m.records.len(); i++ {
		// The stored Data is immutable, so the rollback area may share it.
		m.rolled = append(m.rolled, m.records.at(i).rec)
	}
	m.records.truncate(keep)
	m.epochs = truncateEpochs(m.epochs, after)
}

// RolledBack implements Log.
func (m *MemoryLog) RolledBack(limit int) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("read rollback area: %w", ErrClosed)
	}
	n := min(max(limit, 0), len(m.rolled))
	out := make([]Record, n)
	for i, r := range m.rolled[:n] {
		out[i] = cloneRecord(r)
	}
	return out, nil
}

// DiscardRolledBack implements Log.
func (m *MemoryLog) DiscardRolledBack(n int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("discard %d rolled back: %w", n, ErrClosed)
	}
	if n < 0 || n > len(m.rolled) {
		return fmt.Errorf("discard %d rolled back of %d: %w", n, len(m.rolled), ErrOutOfRange)
	}
	// Re-slicing from the front never writes into the shared array.
	m.rolled = m.rolled[n:]
	return nil
}

// SetMeta implements Log.
func (m *MemoryLog) SetMeta(name string, value []byte) error {
	if err := checkMeta(name, value); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("set meta %q: %w", name, ErrClosed)
	}
	// A fresh copy, never modified afterwards, so Clone may share it.
	m.meta[name] = append(make([]byte, 0, len(value)), value...)
	return nil
}

// Meta implements Log.
func (m *MemoryLog) Meta(name string) ([]byte, bool, error) {
	if err := checkMeta(name, nil); err != nil {
		return nil, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, false, fmt.Errorf("get meta %q: %w", name, ErrClosed)
	}
	v, ok := m.meta[name]
	if !ok {
		return nil, false, nil
	}
	return append(make([]byte, 0, len(v)), v...), true, nil
}

// Epochs implements Log.
func (m *MemoryLog) Epochs() []EpochStart {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.epochs)
}

// AddEpoch implements Log.
func (m *MemoryLog) AddEpoch(e EpochStart) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("add epoch %d: %w", e.Epoch, ErrClosed)
	}
	if err := checkAddEpoch(m.epochs, e, m.last()); err != nil {
		return err
	}
	// append on a clipped or private slice: a Clone's copy is never touched.
	m.epochs = append(m.epochs, e)
	return nil
}

// Write implements BatchWriter: the batch is checked whole, with the
// errors its steps would return one by one, and then applied at once, so
// that an invalid batch changes nothing and a Clone never sees part of one.
// An empty batch is a no-op (even on a closed log: it has no step to fail).
func (m *MemoryLog) Write(b Batch) error {
	if b.Empty() {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var unwritable error
	if m.closed {
		unwritable = ErrClosed
	}
	s := batchState{first: m.first, last: m.last(), lastEpoch: m.lastEpoch(), baseEpoch: m.baseEpoch,
		epochs: m.epochs, rolled: uint64(len(m.rolled))}
	p, err := checkBatch(&b, s, unwritable, func(off Offset) (Epoch, error) {
		return m.records.at(int(off - m.first)).rec.Epoch, nil
	})
	if err != nil {
		return fmt.Errorf("write batch: %w", err)
	}
	setMeta := func(ms []MetaValue) {
		for _, v := range ms {
			// A fresh copy, never modified afterwards, so Clone may share it.
			m.meta[v.Name] = append(make([]byte, 0, len(v.Value)), v.Value...)
		}
	}
	setMeta(b.Meta)
	if p.truncate {
		m.truncate(b.TruncateAfter)
	}
	setMeta(b.MetaAfterTruncate)
	for i, r := range b.Records {
		m.records.append(memRecord{rec: cloneRecord(r), size: len(p.encoded[i])})
	}
	if len(b.Epochs) > 0 {
		m.epochs = p.epochs // a new slice, private to m
	}
	// Re-slicing from the front never writes into the shared array.
	m.rolled = m.rolled[b.DiscardRolledBack:]
	if len(b.Records) > 0 {
		m.notify()
	}
	return nil
}

// Compact implements Log.
func (m *MemoryLog) Compact(upto Offset) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("compact to %d: %w", upto, ErrClosed)
	}
	if upto > m.last() {
		return fmt.Errorf("compact to %d beyond last %d: %w", upto, m.last(), ErrOutOfRange)
	}
	if upto < m.first {
		return nil
	}
	n := int(upto + 1 - m.first)
	m.baseEpoch = m.records.at(n - 1).rec.Epoch
	m.records.dropFront(n)
	m.first = upto + 1
	return nil
}

// Restore implements Log.
func (m *MemoryLog) Restore(last Offset, lastEpoch Epoch, epochs []EpochStart) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("restore to %d: %w", last, ErrClosed)
	}
	if err := checkEpochs(epochs, last); err != nil {
		return fmt.Errorf("restore to %d: %w", last, err)
	}
	grew := last > m.last()
	m.records = newRecordStore(memChunk)
	m.first = last + 1
	m.baseEpoch = lastEpoch
	m.epochs = slices.Clone(epochs)
	if grew {
		m.notify()
	}
	return nil
}

// Wait implements Log.
func (m *MemoryLog) Wait(ctx context.Context, after Offset) error {
	return waitPast(ctx, after, func() (bool, Offset, <-chan struct{}) {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.closed, m.last(), m.changed
	})
}

// Close implements Log. It wakes every Wait with ErrClosed.
func (m *MemoryLog) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		m.notify()
	}
	return nil
}
