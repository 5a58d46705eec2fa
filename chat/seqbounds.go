package chat

import "sync"

// maxSeqBounds bounds the clients whose seq bound a State remembers; past
// it the State starts over (a forgotten client costs one scan of its dedup
// results to relearn).
const maxSeqBounds = 1 << 16

// seqBounds remembers, per client, a bound on the seqs of its requests
// applied so far, so that applying a request above it skips reading the
// dedup table for its (client, seq): nearly every request is new, and that
// read is a miss, the dearest kind of Badger read, on every replica for
// every request.
//
// It is a cache of what the store answers, so it changes nothing Apply
// writes. Invariant: for every client in max, every (client, seq) that
// Result reports as applied has seq <= max[client]. A bound may be too high
// (a client expired since), which only costs the read; never too low. That
// holds because the State is its store's only writer: only Apply adds
// results (raising bounds after it commits), RestoreSnapshot replaces them
// all and RollbackTo removes some (both clear the bounds). Filling a dedup
// hole applies a seq at or below the client's Floor, which is at or below
// its bound already (scanMaxSeq), so it needs no raise.
type seqBounds struct {
	mu  sync.Mutex
	max map[string]uint64
}

func (b *seqBounds) get(client string) (uint64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.max[client]
	return v, ok
}

// merge records the bounds a committed transaction learned or raised.
func (b *seqBounds) merge(txn map[string]uint64) {
	if len(txn) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.max == nil || len(b.max)+len(txn) > maxSeqBounds {
		b.max = make(map[string]uint64, len(txn))
	}
	for c, v := range txn {
		b.max[c] = max(b.max[c], v)
	}
}

// reset forgets every bound: the state was replaced.
func (b *seqBounds) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.max = nil
}

// txnSeqs is one apply transaction's view of the bounds: the committed
// ones, plus those it learned or raised (merged once it commits).
type txnSeqs struct {
	committed *seqBounds
	txn       map[string]uint64
}

func newTxnSeqs(committed *seqBounds) *txnSeqs {
	return &txnSeqs{committed: committed, txn: make(map[string]uint64)}
}

// bound returns the bound of client, whose dedup record c exists, learning
// it from the store the first time.
func (t *txnSeqs) bound(kv KV, client string, c clientRec) (uint64, error) {
	if v, ok := t.txn[client]; ok {
		return v, nil
	}
	if v, ok := t.committed.get(client); ok {
		return v, nil
	}
	v, err := scanMaxSeq(kv, client, c)
	if err != nil {
		return 0, err
	}
	t.txn[client] = v
	return v, nil
}

// none records that client has no dedup record: nothing of it is applied.
func (t *txnSeqs) none(client string) {
	if _, ok := t.txn[client]; !ok {
		t.txn[client] = 0
	}
}

// raise records that (client, seq) was applied, if client's bound is known
// (it is, after isDuplicate looked at the client).
func (t *txnSeqs) raise(client string, seq uint64) {
	if t == nil {
		return
	}
	if v, ok := t.txn[client]; ok {
		t.txn[client] = max(v, seq)
		return
	}
	if v, ok := t.committed.get(client); ok {
		t.txn[client] = max(v, seq)
	}
}

// scanMaxSeq is the highest seq of client with a stored result, or its
// Floor if higher: results are kept only above Floor, and every seq applied
// without a stored result (in a hole, or below HoleFloor) is at or below
// Floor. At most DedupWindow+dedupEvictBatch keys.
func scanMaxSeq(kv KV, client string, c clientRec) (uint64, error) {
	maxSeq := c.Floor
	err := kv.Scan(resultPrefix(client), resultKey(client, c.Floor+1), func(k, _ []byte) (bool, error) {
		seq, err := suffixU64(k)
		maxSeq = max(maxSeq, seq)
		return true, err
	})
	return maxSeq, err
}
