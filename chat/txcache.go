package chat

import (
	"bytes"
	"slices"
	"sync"
)

// cachedKV is a write-back cache over one transaction's KV: it remembers the
// values read and written through it, and hands the writes to the store
// only when flush is called, at the end of the transaction.
//
// Reads: applying a batch reads each key from the store at most once.
// Applying a send reads its client's dedup record twice, and every record
// reads the clock, expiry and purge keys; each store read is a walk of
// Badger's memtables and levels, misses (the common case for the purge key
// and for new results) being the dearest.
//
// Writes: a key written many times in a batch (the clock, a user's record,
// a client's dedup record) reaches the store once. And the store's
// transaction holds no pending writes while the batch runs, which is what
// makes Scan cheap: a Badger iterator opened in a write transaction first
// copies and sorts all of the transaction's pending writes, so a scan late
// in a batch of 256 records sorted some 3000 entries. Scan here merges the
// store's (committed) keys with the few cached writes under its prefix.
//
// It is sound because a transaction sees its own writes and nothing else's:
// the cache answers what the store would have answered had every write gone
// to it at once. It assumes the code that uses it never modifies a key or a
// value it handed to Set or Delete (KV would allow it; cachedKV is only used
// by Apply, which builds a new key for every call).
type cachedKV struct {
	kv KV
	// committed, if not nil, answers for the keys it holds before the
	// store is asked.
	committed *committedCache
	// vals maps a key to its current value in the transaction: ok false
	// when it is known to be absent.
	vals map[string]cachedValue
	// dirty holds the keys written and not yet flushed, in the order of
	// their first write, so that flush is deterministic without a sort.
	// Invariant: string(k) is in dirty <=> vals[string(k)].dirty.
	dirty [][]byte

	// recordUndo makes the cache remember, for every key written, its
	// value before the transaction, for the batch's undo record (undo.go).
	// Set it before the first write.
	recordUndo bool
	// undo lists the keys written, in the order of their first write, with
	// their values before the transaction. A key written blind (not read
	// first) has known false until flush reads it from the store, before
	// writing anything. undoIdx indexes undo by key.
	undo    []undoEntry
	undoIdx map[string]int
}

type cachedValue struct {
	v  []byte
	ok bool
	// dirty: written in the transaction, not yet flushed to the store.
	dirty bool
}

// cachedKeysHint presizes the cache for a small batch: a send touches about
// ten keys, some of them shared with the batch's other records.
const cachedKeysHint = 32

// newCachedKV returns a cache over kv for a transaction expected to touch
// about keys keys; committed may be nil.
func newCachedKV(kv KV, committed *committedCache, keys int) *cachedKV {
	return &cachedKV{kv: kv, committed: committed, vals: make(map[string]cachedValue, max(keys, cachedKeysHint))}
}

// Get implements KV. Callers must not modify the returned value.
func (c *cachedKV) Get(key []byte) ([]byte, bool, error) {
	if cv, hit := c.vals[string(key)]; hit {
		return cv.v, cv.ok, nil
	}
	if c.committed != nil {
		if cv, hit := c.committed.get(key); hit {
			c.vals[string(key)] = cv
			return cv.v, cv.ok, nil
		}
	}
	v, ok, err := c.kv.Get(key)
	if err != nil {
		return nil, false, err
	}
	c.vals[string(key)] = cachedValue{v: v, ok: ok}
	return v, ok, nil
}

// Set implements KV. It never fails: a store's refusal (ErrTxnTooBig)
// surfaces at flush.
func (c *cachedKV) Set(key, value []byte) error {
	c.write(key, cachedValue{v: value, ok: true, dirty: true})
	return nil
}

// Delete implements KV. It never fails, like Set.
func (c *cachedKV) Delete(key []byte) error {
	c.write(key, cachedValue{dirty: true})
	return nil
}

func (c *cachedKV) write(key []byte, cv cachedValue) {
	old, cached := c.vals[string(key)]
	if !cached || !old.dirty {
		c.dirty = append(c.dirty, key)
	}
	if c.recordUndo {
		c.noteBefore(key, old, cached)
	}
	c.vals[string(key)] = cv
}

// noteBefore remembers key's value before the transaction, at its first
// write. A clean cached value (old, if cached) is that value: it is the
// store's, read or flushed, and any earlier write of the key in the
// transaction would have been noted already.
func (c *cachedKV) noteBefore(key []byte, old cachedValue, cached bool) {
	if _, seen := c.undoIdx[string(key)]; seen {
		return
	}
	if c.undoIdx == nil {
		c.undoIdx = make(map[string]int, cachedKeysHint)
	}
	c.undoIdx[string(key)] = len(c.undo)
	c.undo = append(c.undo, undoEntry{key: key, val: old.v, ok: old.ok, known: cached})
}

// undoEntries returns every key written through the cache with its value
// before the transaction, in the order of first writes. Valid after flush.
func (c *cachedKV) undoEntries() []undoEntry { return c.undo }

// flush writes the cached writes to the store's transaction, each key once
// with its last value. It must be called before the transaction commits;
// the cache stays usable after it. With recordUndo, it first reads the
// value before the transaction of each key written blind: the store's
// transaction has none of the cache's writes yet.
func (c *cachedKV) flush() error {
	if c.recordUndo {
		for i := range c.undo {
			e := &c.undo[i]
			if e.known {
				continue
			}
			v, ok, err := c.kv.Get(e.key)
			if err != nil {
				return err
			}
			e.val, e.ok, e.known = v, ok, true
		}
	}
	for i, k := range c.dirty {
		cv := c.vals[string(k)]
		var err error
		if cv.ok {
			err = c.kv.Set(k, cv.v)
		} else {
			err = c.kv.Delete(k)
		}
		if err != nil {
			// Keep what was not written dirty, so that a caller may
			// tell the rest is missing; the transaction is lost anyway.
			c.dirty = c.dirty[i:]
			return err
		}
		cv.dirty = false
		c.vals[string(k)] = cv
	}
	c.dirty = c.dirty[:0]
	return nil
}

// Scan implements KV: the store's keys merged with the unflushed writes.
// Whether the running scan sees the writes fn makes is unspecified, as KV
// allows: it sees some (a later key written before the scan began), not
// others (a key fn creates).
func (c *cachedKV) Scan(prefix, start []byte, fn func(key, value []byte) (bool, error)) error {
	// The unflushed keys of the range, in key order: a short list for the
	// scans Apply makes (one client's results, one user's history). A key
	// below start with the prefix cannot be >= start, and when start sorts
	// before prefix every key with the prefix is above it.
	var pending [][]byte
	for _, k := range c.dirty {
		if bytes.HasPrefix(k, prefix) && bytes.Compare(k, start) >= 0 {
			pending = append(pending, k)
		}
	}
	if len(pending) == 0 {
		return c.kv.Scan(prefix, start, fn)
	}
	slices.SortFunc(pending, bytes.Compare)
	// emit passes a cached write to fn, skipping a deletion.
	emit := func(k []byte) (bool, error) {
		cv := c.vals[string(k)]
		if !cv.ok {
			return true, nil
		}
		return fn(k, cv.v)
	}
	stopped := false
	err := c.kv.Scan(prefix, start, func(k, v []byte) (bool, error) {
		for len(pending) > 0 && bytes.Compare(pending[0], k) < 0 {
			more, err := emit(pending[0])
			pending = pending[1:]
			if err != nil || !more {
				stopped = true
				return false, err
			}
		}
		var (
			more bool
			err  error
		)
		if len(pending) > 0 && bytes.Equal(pending[0], k) {
			more, err = emit(pending[0]) // the cached write replaces the stored value
			pending = pending[1:]
		} else {
			more, err = fn(k, v)
		}
		stopped = err != nil || !more
		return more, err
	})
	if err != nil || stopped {
		return err
	}
	for _, k := range pending {
		if more, err := emit(k); err != nil || !more {
			return err
		}
	}
	return nil
}

// maxCommittedValues bounds the values a committedCache holds; past it the
// cache starts over (a forgotten key costs one store read to relearn).
// About 200 bytes each (a user record and its key).
const maxCommittedValues = 1 << 14

// committedCache remembers, across Apply's transactions, the committed
// values of the keys every request reads: the counters (applied, clock,
// expiry_due, purge, next_uid, restoring), user records and dedup client
// records. Each is otherwise a store read per transaction; a Badger read
// that misses the memtables walks the levels' tables, and two of them
// (restoring, purge) are misses, the dearest kind.
//
// It is a cache of what the store holds, so it changes nothing Apply
// writes. Invariant: for every key in vals, vals[key] is the key's value in
// the store (ok false: absent). That holds because the State is its store's
// only writer: merge runs only after a transaction committed, any failed
// transaction resets the cache (its commit may or may not have happened),
// and RestoreSnapshot and RollbackTo reset it. Each value is immutable once
// cached.
type committedCache struct {
	mu   sync.Mutex
	vals map[string]cachedValue
}

// cacheableKey reports whether key is one of those a committedCache keeps:
// the counters (the only keys without a '/') and user and client records.
// Other keys are read about once (a message, a result) or never.
func cacheableKey(key []byte) bool {
	return bytes.IndexByte(key, '/') < 0 || bytes.HasPrefix(key, prefixUser) || bytes.HasPrefix(key, prefixClient)
}

func (c *committedCache) get(key []byte) (cachedValue, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cv, ok := c.vals[string(key)]
	return cv, ok
}

// merge records the cacheable values a committed transaction read or
// wrote: they are now the store's. txn must have been flushed.
func (c *committedCache) merge(txn *cachedKV) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, cv := range txn.vals {
		if !cacheableKey([]byte(k)) {
			continue
		}
		if c.vals == nil || len(c.vals) >= maxCommittedValues {
			c.vals = make(map[string]cachedValue, cachedKeysHint)
		}
		cv.dirty = false
		c.vals[k] = cv
	}
}

// reset forgets every value: the store changed in a way the cache did not
// see (a restore, or a transaction that failed).
func (c *committedCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.vals = nil
}

// committedReads answers Decide's reads of cacheable keys (a send reads two
// user records) from the committed cache when it holds the key, and the
// others from the read transaction.
//
// The values may be newer than the transaction's snapshot, or, between a
// commit and its merge, older than the store: Decide's checks are advisory
// (Apply checks again, and its verdict is the one that counts), so either
// is a state the store held. Only present values are taken: an account
// deleted after the snapshot was taken would otherwise make the snapshot's
// name entry point at a missing user.
type committedReads struct {
	KV
	c *committedCache
}

// Get implements KV.
func (r committedReads) Get(key []byte) ([]byte, bool, error) {
	if cv, hit := r.c.get(key); hit && cv.ok {
		return cv.v, true, nil
	}
	return r.KV.Get(key)
}
