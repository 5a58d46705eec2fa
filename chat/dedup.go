package chat

import "fmt"

// The dedup table keeps, per client id, the results of at least its last
// DedupWindow requests (by seq; evicted dedupEvictBatch at a time, so at
// most DedupWindow+dedupEvictBatch-1), and drops a client entirely once it
// has been idle for at least DedupIdleNanos (looked for every
// dedupExpiryPeriod, so at most DedupIdleNanos+dedupIdleGrain+
// dedupExpiryPeriod after its last request). Both bounds depend only on the
// log, never on a local clock: "now" is the highest record Time applied so
// far (the clock key), which never goes backwards even if primaries' wall
// clocks disagree.
//
// A seq at or below the client's Floor (evicted from its window) is treated
// as already applied: it is skipped, and Result reports ErrExpiredRequest.
// This assumes a client's seqs grow and that it has fewer than DedupWindow
// requests in flight, which the client library guarantees.

const (
	// dedupEvictBatch results are evicted at once, so that the scan for the
	// oldest ones happens once per dedupEvictBatch requests, not every one.
	dedupEvictBatch = 64
	// dedupExpiryPeriod is how often (in log time) idle clients are looked
	// for: one hour.
	dedupExpiryPeriod = int64(3600 * 1e9)
	// dedupIdleGrain is how far a client's clock may run ahead of its
	// recorded last activity (clientRec.Last) before the idle index entry
	// is moved: one hour. Moving it costs a delete and a set, which every
	// request paid when Last was exact; against a 7-day expiry an hour is
	// noise, and expiry waits for the grain too, so no client is dropped
	// before it has been idle DedupIdleNanos.
	dedupIdleGrain = int64(3600 * 1e9)
)

func advanceClock(kv KV, t int64) (int64, error) {
	clock, err := getU64(kv, keyClock)
	if err != nil {
		return 0, err
	}
	if t > 0 && uint64(t) > clock {
		clock = uint64(t)
		if err := putU64(kv, keyClock, clock); err != nil {
			return 0, err
		}
	}
	return int64(clock), nil
}

// isDuplicate reports whether (client, seq) was applied already. seqs, if
// not nil, spares the dedup table read for a seq above the client's bound.
func isDuplicate(kv KV, seqs *txnSeqs, client string, seq uint64) (bool, error) {
	var c clientRec
	ok, err := getRec(kv, clientKey(client), &c)
	if err != nil {
		return false, err
	}
	if !ok {
		if seqs != nil {
			seqs.none(client)
		}
		return false, nil
	}
	if seq <= c.Floor {
		return true, nil
	}
	if seqs != nil {
		bound, err := seqs.bound(kv, client, c)
		if err != nil {
			return false, err
		}
		if seq > bound {
			return false, nil
		}
	}
	_, ok, err = kv.Get(resultKey(client, seq))
	return ok, err
}

func storeResult(kv KV, client string, seq uint64, clock int64, res Result) error {
	var c clientRec
	found, err := getRec(kv, clientKey(client), &c)
	if err != nil {
		return err
	}
	// The clock never goes backwards, so clock >= c.Last.
	touch := !found || clock-c.Last >= dedupIdleGrain
	if found && touch {
		if err := kv.Delete(idleKey(uint64(c.Last), client)); err != nil {
			return err
		}
	}
	if err := putRec(kv, resultKey(client, seq), &res); err != nil {
		return err
	}
	c.Count++
	if c.Count >= DedupWindow+dedupEvictBatch {
		if err := evictOldest(kv, client, &c, dedupEvictBatch); err != nil {
			return err
		}
	}
	if touch {
		c.Last = clock
		if err := kv.Set(idleKey(uint64(c.Last), client), nil); err != nil {
			return err
		}
	}
	return putRec(kv, clientKey(client), &c)
}

// evictOldest drops the client's n lowest seqs, raising its Floor.
func evictOldest(kv KV, client string, c *clientRec, n int) error {
	var oldest [][]byte
	// Start above Floor: lower seqs are gone, and on Badger their tombstones
	// would cost a scan from the prefix's start.
	err := kv.Scan(resultPrefix(client), resultKey(client, c.Floor+1), func(k, _ []byte) (bool, error) {
		oldest = append(oldest, append([]byte(nil), k...))
		return len(oldest) < n, nil
	})
	if err != nil {
		return err
	}
	if len(oldest) < n {
		return fmt.Errorf("%w: client %q counts %d results, has fewer", ErrInconsistent, client, c.Count)
	}
	for _, k := range oldest {
		seq, err := suffixU64(k)
		if err != nil {
			return err
		}
		c.Floor = max(c.Floor, seq)
		c.Count--
		if err := kv.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// expireClients drops up to maxExpirePerRecord clients idle since before
// clock-DedupIdleNanos, oldest first: those whose Last is older than that by
// more than dedupIdleGrain, as Last may lag their last request by up to the
// grain. It looks only once per dedupExpiryPeriod of log time (or at the
// next record if it left some behind), so that applying a record rarely
// scans.
func expireClients(kv KV, clock int64) error {
	cutoff := clock - DedupIdleNanos - dedupIdleGrain
	if cutoff <= 0 {
		return nil
	}
	due, err := getU64(kv, keyExpiryDue)
	if err != nil || uint64(clock) < due {
		return err
	}
	var idle [][]byte
	err = kv.Scan(prefixIdle, nil, func(k, _ []byte) (bool, error) {
		t, err := suffixU64(k[:len(prefixIdle)+8])
		if err != nil {
			return false, err
		}
		if int64(t) >= cutoff {
			return false, nil
		}
		idle = append(idle, append([]byte(nil), k...))
		return len(idle) < maxExpirePerRecord, nil
	})
	if err != nil {
		return err
	}
	next := uint64(clock + dedupExpiryPeriod)
	if len(idle) == maxExpirePerRecord {
		next = uint64(clock) // maybe more to expire: look again next record
	}
	if err := putU64(kv, keyExpiryDue, next); err != nil {
		return err
	}
	for _, k := range idle {
		client := string(k[len(prefixIdle)+8+2:])
		var keys [][]byte
		err := kv.Scan(resultPrefix(client), nil, func(rk, _ []byte) (bool, error) {
			keys = append(keys, append([]byte(nil), rk...))
			return true, nil
		})
		if err != nil {
			return err
		}
		keys = append(keys, clientKey(client), k)
		for _, dk := range keys {
			if err := kv.Delete(dk); err != nil {
				return err
			}
		}
	}
	return nil
}

// Result returns the stored outcome of request (clientID, seq): ok false if
// it was never applied. For a seq evicted from the client's window, ok is
// true and the Result carries ErrExpiredRequest.
func (s *State) Result(clientID string, seq uint64) (Result, bool, error) {
	var (
		res Result
		ok  bool
	)
	err := s.store.View(func(kv KV) error {
		var c clientRec
		found, err := getRec(kv, clientKey(clientID), &c)
		if err != nil || !found {
			return err
		}
		if seq <= c.Floor {
			res, ok = failed(fmt.Errorf("%w: client %q seq %d", ErrExpiredRequest, clientID, seq)), true
			return nil
		}
		v, found, err := kv.Get(resultKey(clientID, seq))
		if err != nil || !found {
			return err
		}
		if err := decodeValue(v, &res); err != nil {
			return fmt.Errorf("%w: decode result of %q/%d: %v", ErrInconsistent, clientID, seq, err)
		}
		ok = true
		return nil
	})
	if err != nil {
		return Result{}, false, fmt.Errorf("read result of %q/%d: %w", clientID, seq, err)
	}
	return res, ok, nil
}

// MaxSeq returns a bound on the seqs of clientID's applied requests: every
// request of that client that Result would report as applied has a seq at
// or below it. It is the highest seq with a stored result, or the client's
// Floor if higher; 0 for a client with no dedup entry (never seen, or
// expired). A server uses it to know that a request with a higher seq is
// new without looking its result up.
func (s *State) MaxSeq(clientID string) (uint64, error) {
	var maxSeq uint64
	err := s.store.View(func(kv KV) error {
		var c clientRec
		found, err := getRec(kv, clientKey(clientID), &c)
		if err != nil || !found {
			return err
		}
		maxSeq, err = scanMaxSeq(kv, clientID, c)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read highest seq of %q: %w", clientID, err)
	}
	return maxSeq, nil
}
