package chat

import (
	"bytes"
	"fmt"
)

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
// # Below the window: applied seqs and holes
//
// Eviction raises the client's Floor to the highest seq evicted. A seq at
// or below Floor is one of two things:
//   - applied: its result was evicted. A retry is skipped and Result
//     reports ErrExpiredRequest;
//   - a hole: it had no result when the window passed it, so it was never
//     applied here. Decide refused it, it was answered not_primary, or,
//     after a partition forked the log, it was applied only on the side
//     that lost, whose replica truncated it and re-submits it now.
//
// Holes are kept as ranges [lo, hi], one key each (d/h/<client><hi> -> lo),
// counted in the client record; not in that record itself, which is
// written on every request. Eviction adds the seqs it passes without a
// result (ranges never adjacent: between two lies an applied seq). A
// request in a hole
// is applied, not dropped as a duplicate, and leaves the hole (the range is
// shrunk or split). It stores no result: results are kept only above Floor,
// and its result reaches the request waiting for it through
// ApplyWithResults. A second copy of it is then a duplicate like any seq
// below Floor. Result reports a seq in a hole as not applied.
//
// # The bound on holes, and what lies below it
//
// A client keeps at most maxHolesPerClient hole ranges. Past that, its
// oldest ranges are forgotten and HoleFloor remembers the highest seq they
// covered: at or below HoleFloor the table cannot tell an applied seq from
// a hole. There, a live request (not re-submitted) is skipped and answered
// ErrExpiredRequest, as every seq below the window was before holes
// existed; a re-submission (eventlog.Record.Resubmitted) is applied, since
// losing an acknowledged write is worse than applying one twice, except a
// send whose message is already stored (by message id: sendApplied).
// ApplyWithResults flags both cases (AppliedResult.Unknown).
//
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
	// maxHolesPerClient bounds a client's hole ranges. A client leaves one
	// range per run of consecutive seqs never applied: a run of requests
	// Decide refused or a replica answered not_primary, or the records a
	// fork left on the losing side. 4096 runs is days of a client whose
	// every other request fails; a partition leaves a few. About 30 bytes
	// a key: at most some 128 KiB per client.
	maxHolesPerClient = 4096
	// expireKeysPerRecord bounds the keys expireClients deletes for one
	// record, past the first client it expires: a client holds up to
	// DedupWindow+dedupEvictBatch results and maxHolesPerClient holes, and
	// one record's transaction must stay well within a store's limits.
	expireKeysPerRecord = 8192
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

// dedupVerdict is what the dedup table knows of a request about to apply.
type dedupVerdict uint8

const (
	// verdictNew: never applied; apply it and store its result.
	verdictNew dedupVerdict = iota
	// verdictHole: below the window, in a hole: never applied here; apply
	// it and take it out of the hole.
	verdictHole
	// verdictDuplicate: applied already; skip it.
	verdictDuplicate
	// verdictUnknown: at or below the client's HoleFloor, where the table
	// forgot which seqs were applied.
	verdictUnknown
)

// hole is a range [lo, hi] of a client's seqs that were never applied.
type hole struct{ lo, hi uint64 }

// checkDedup says whether request (client, seq) was applied already, and
// for verdictHole, the hole that holds it. seqs, if not nil, spares the
// dedup table read for a seq above the client's bound.
func checkDedup(kv KV, seqs *txnSeqs, client string, seq uint64) (dedupVerdict, hole, error) {
	var c clientRec
	ok, err := getRec(kv, clientKey(client), &c)
	if err != nil {
		return 0, hole{}, err
	}
	if !ok {
		if seqs != nil {
			seqs.none(client)
		}
		return verdictNew, hole{}, nil
	}
	if seq <= c.Floor {
		if c.HoleFloor > 0 && seq <= c.HoleFloor {
			return verdictUnknown, hole{}, nil
		}
		h, in, err := findHole(kv, client, c, seq)
		if err != nil || !in {
			return verdictDuplicate, hole{}, err
		}
		return verdictHole, h, nil
	}
	if seqs != nil {
		bound, err := seqs.bound(kv, client, c)
		if err != nil {
			return 0, hole{}, err
		}
		if seq > bound {
			return verdictNew, hole{}, nil
		}
	}
	_, ok, err = kv.Get(resultKey(client, seq))
	if err != nil || !ok {
		return verdictNew, hole{}, err
	}
	return verdictDuplicate, hole{}, nil
}

// findHole returns the hole of client (whose record is c) that holds seq;
// in is false if none does.
func findHole(kv KV, client string, c clientRec, seq uint64) (h hole, in bool, err error) {
	if c.Holes == 0 {
		return hole{}, false, nil
	}
	// Holes are keyed by their end: the first one ending at or after seq is
	// the only one that can hold it.
	err = kv.Scan(holePrefix(client), holeKey(client, seq), func(k, v []byte) (bool, error) {
		hi, err := suffixU64(k)
		if err != nil {
			return false, err
		}
		lo, err := decodeU64(v)
		if err != nil {
			return false, err
		}
		h, in = hole{lo: lo, hi: hi}, lo <= seq
		return false, nil
	})
	return h, in, err
}

// recordApplied updates client's dedup bookkeeping for request seq, just
// applied with result res under verdict v: it stores the result
// (verdictNew), takes seq out of its hole h (verdictHole), or only notes the
// client's activity (verdictUnknown).
func recordApplied(kv KV, client string, seq uint64, clock int64, res Result, v dedupVerdict, h hole) error {
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
	switch v {
	case verdictNew:
		if err := putRec(kv, resultKey(client, seq), &res); err != nil {
			return err
		}
		c.Count++
		if c.Count >= DedupWindow+dedupEvictBatch {
			if err := evictOldest(kv, client, &c, dedupEvictBatch); err != nil {
				return err
			}
		}
	case verdictHole:
		if err := fillHole(kv, client, &c, seq, h); err != nil {
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

// evictOldest drops the client's n lowest seqs, raising its Floor over
// them, and records the seqs it passes without a result as holes.
//
// Holes need no merging: each is maximal by construction. The seq after a
// new hole is an evicted one, and the seq before it is too, or the old
// Floor, which was evicted itself; filling a hole only shrinks or splits
// it around an applied seq.
func evictOldest(kv KV, client string, c *clientRec, n int) error {
	var oldest [][]byte
	// Start above Floor: lower seqs are gone, and on Badger their tombstones
	// would cost a scan from the prefix's start.
	err := kv.Scan(resultPrefix(client), resultKey(client, c.Floor+1), func(k, _ []byte) (bool, error) {
		oldest = append(oldest, bytes.Clone(k))
		return len(oldest) < n, nil
	})
	if err != nil {
		return err
	}
	if len(oldest) < n {
		return fmt.Errorf("%w: client %q counts %d results, has fewer", ErrInconsistent, client, c.Count)
	}
	prev := c.Floor
	for _, k := range oldest {
		seq, err := suffixU64(k)
		if err != nil {
			return err
		}
		if seq > prev+1 {
			c.Holes++
			if err := putU64(kv, holeKey(client, seq-1), prev+1); err != nil {
				return err
			}
		}
		prev = seq
		c.Count--
		if err := kv.Delete(k); err != nil {
			return err
		}
	}
	c.Floor = prev
	return forgetOldestHoles(kv, client, c)
}

// fillHole takes seq out of h, client's hole that holds it.
func fillHole(kv KV, client string, c *clientRec, seq uint64, h hole) error {
	switch {
	case h.lo == h.hi:
		c.Holes--
		return kv.Delete(holeKey(client, h.hi))
	case seq == h.hi:
		if err := kv.Delete(holeKey(client, h.hi)); err != nil {
			return err
		}
		return putU64(kv, holeKey(client, seq-1), h.lo)
	case seq == h.lo:
		return putU64(kv, holeKey(client, h.hi), seq+1)
	}
	// Split: [lo, seq-1] and [seq+1, hi].
	if err := putU64(kv, holeKey(client, seq-1), h.lo); err != nil {
		return err
	}
	if err := putU64(kv, holeKey(client, h.hi), seq+1); err != nil {
		return err
	}
	c.Holes++
	return forgetOldestHoles(kv, client, c)
}

// forgetOldestHoles drops the client's oldest holes beyond
// maxHolesPerClient, raising HoleFloor over them.
func forgetOldestHoles(kv KV, client string, c *clientRec) error {
	if c.Holes <= maxHolesPerClient {
		return nil
	}
	n := int(c.Holes - maxHolesPerClient)
	var keys [][]byte
	// Start above HoleFloor, past the tombstones of forgotten holes.
	err := kv.Scan(holePrefix(client), holeKey(client, c.HoleFloor+1), func(k, _ []byte) (bool, error) {
		keys = append(keys, bytes.Clone(k))
		return len(keys) < n, nil
	})
	if err != nil {
		return err
	}
	if len(keys) < n {
		return fmt.Errorf("%w: client %q counts %d holes, has fewer", ErrInconsistent, client, c.Holes)
	}
	for _, k := range keys {
		hi, err := suffixU64(k)
		if err != nil {
			return err
		}
		c.HoleFloor = max(c.HoleFloor, hi)
		c.Holes--
		if err := kv.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// expireClients drops clients idle since before clock-DedupIdleNanos,
// oldest first: those whose Last is older than that by more than
// dedupIdleGrain, as Last may lag their last request by up to the grain. It
// drops up to maxExpirePerRecord of them, and stops earlier once it deleted
// expireKeysPerRecord keys. It looks only once per dedupExpiryPeriod of log
// time (or at the next record if it left some behind), so that applying a
// record rarely scans.
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
		idle = append(idle, bytes.Clone(k))
		return len(idle) < maxExpirePerRecord, nil
	})
	if err != nil {
		return err
	}
	more := len(idle) == maxExpirePerRecord // maybe more to expire
	deleted := 0
	for _, k := range idle {
		if deleted >= expireKeysPerRecord {
			more = true // the rest wait for the next record
			break
		}
		client := string(k[len(prefixIdle)+8+2:])
		var keys [][]byte
		for _, prefix := range [][]byte{resultPrefix(client), holePrefix(client)} {
			err := kv.Scan(prefix, nil, func(dk, _ []byte) (bool, error) {
				keys = append(keys, bytes.Clone(dk))
				return true, nil
			})
			if err != nil {
				return err
			}
		}
		keys = append(keys, clientKey(client), k)
		for _, dk := range keys {
			if err := kv.Delete(dk); err != nil {
				return err
			}
		}
		deleted += len(keys)
	}
	next := uint64(clock + dedupExpiryPeriod)
	if more {
		next = uint64(clock) // look again next record
	}
	return putU64(kv, keyExpiryDue, next)
}

// Result returns the stored outcome of request (clientID, seq): ok false if
// it was never applied (nor seen: a seq in one of the client's holes, above
// its window, or of a client the table has no entry for). For a seq below
// the client's window that is not in a hole (applied, its result evicted,
// or where the table forgot: see HoleFloor), ok is true and the Result
// carries ErrExpiredRequest.
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
			if c.HoleFloor == 0 || seq > c.HoleFloor {
				_, in, err := findHole(kv, clientID, c, seq)
				if err != nil || in {
					return err
				}
			}
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
// new without looking its result up. (Holes lie at or below Floor, so a
// seq in a hole is below the bound too: the bound is one-sided.)
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
