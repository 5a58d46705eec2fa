package replica

import (
	"fmt"

	"github.com/replichat/replichat/eventlog"
)

// LogReader is the read-only view of the durable log the core needs: a
// subset of eventlog.Log. Every call is synchronous; the core never writes
// (writes are returned in Ready for the caller to perform).
type LogReader interface {
	// Read returns records from offset from, up to about maxBytes (at least
	// one when from <= Last()), or none when from > Last().
	Read(from eventlog.Offset, maxBytes int) ([]eventlog.Record, error)
	// First is the first retained offset.
	First() eventlog.Offset
	// Last is the offset of the last record, 0 if none.
	Last() eventlog.Offset
	// LastEpoch is the epoch of the last record, 0 if none.
	LastEpoch() eventlog.Epoch
	// Epochs returns the epoch history, oldest first.
	Epochs() []eventlog.EpochStart
	// RolledBack returns up to max records of the rollback area, oldest
	// first.
	RolledBack(max int) ([]eventlog.Record, error)
	// Meta returns the value stored under name.
	Meta(name string) (value []byte, ok bool, err error)
}

// scanBatchBytes bounds one read of the log while the core scans it (for
// the latest ISR record when no index or chain locates it, or the epoch
// history repair).
const scanBatchBytes = 256 << 10

// logView is the node's view of its log: the durable log up to stableLast,
// then the unstable records it has decided to append but the caller has not
// yet persisted.
//
// Invariants: stableLast <= log.Last() (records of the durable log beyond
// stableLast are due to be truncated); unstable[i].Offset == stableLast+1+i;
// last == stableLast+len(unstable); epochs is the epoch history as it will be
// once the pending Ready is persisted, and its last entry's epoch is the epoch
// of record last.
type logView struct {
	log LogReader
	// base is the ISR in effect at the compaction point (ISRBaseKey), if
	// the log was ever compacted: the chain of ISR records ends there.
	base       *isrView
	stableLast eventlog.Offset
	unstable   []eventlog.Record
	last       eventlog.Offset
	lastEpoch  eventlog.Epoch
	epochs     []eventlog.EpochStart
}

// epochAt returns the epoch of the record at off (0 for off 0). off must be
// <= last.
func (v *logView) epochAt(off eventlog.Offset) eventlog.Epoch {
	if off > v.last {
		panic(fmt.Sprintf("replica: epochAt(%d) beyond last %d", off, v.last))
	}
	var e eventlog.Epoch
	for _, es := range v.epochs {
		if es.Start > off {
			break
		}
		e = es.Epoch
	}
	return e
}

// endFor returns the largest epoch in the history that is <= e, and the
// offset of the last record whose epoch is <= that epoch: where this log's
// history up to epoch e ends. (0, 0) if the history has no such epoch.
// This is Kafka's OffsetsForLeaderEpoch, the basis of divergence detection.
func (v *logView) endFor(e eventlog.Epoch) (eventlog.Epoch, eventlog.Offset) {
	idx := -1
	for i, es := range v.epochs {
		if es.Epoch > e {
			break
		}
		idx = i
	}
	if idx < 0 {
		return 0, 0
	}
	end := v.last
	if idx+1 < len(v.epochs) {
		end = min(end, v.epochs[idx+1].Start-1)
	}
	return v.epochs[idx].Epoch, end
}

// read returns records from offset from, about maxBytes of them, from the
// durable log or the unstable tail. It returns none when from > last.
func (v *logView) read(from eventlog.Offset, maxBytes int) ([]eventlog.Record, error) {
	if from > v.last {
		return nil, nil
	}
	if from > v.stableLast {
		i := int(from - v.stableLast - 1)
		out, size := []eventlog.Record(nil), 0
		for _, r := range v.unstable[i:] {
			if len(out) > 0 && size+approxSize(r) > maxBytes {
				break
			}
			out = append(out, r)
			size += approxSize(r)
		}
		return out, nil
	}
	recs, err := v.log.Read(from, maxBytes)
	if err != nil {
		return nil, fmt.Errorf("read log from %d: %w", from, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("read log from %d: no records though last is %d", from, v.stableLast)
	}
	// Pair assertion: the log must hand back what was asked for.
	for i, r := range recs {
		if r.Offset != from+eventlog.Offset(i) {
			return nil, fmt.Errorf("read log from %d: record %d has offset %d", from, i, r.Offset)
		}
	}
	for len(recs) > 0 && recs[len(recs)-1].Offset > v.stableLast {
		recs = recs[:len(recs)-1]
	}
	return recs, nil
}

// readRange returns every record in [lo, hi].
func (v *logView) readRange(lo, hi eventlog.Offset) ([]eventlog.Record, error) {
	var out []eventlog.Record
	for lo <= hi {
		recs, err := v.read(lo, scanBatchBytes)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if r.Offset > hi {
				break
			}
			out = append(out, r)
		}
		lo = recs[len(recs)-1].Offset + 1
	}
	return out, nil
}

// approxSize estimates a record's encoded size, to batch messages.
func approxSize(r eventlog.Record) int { return 48 + len(r.Type) + len(r.ClientID) + len(r.Data) }

// scanBack calls f on records from hi down to the first retained record,
// in descending offset order, until f returns true.
func (v *logView) scanBack(hi eventlog.Offset, f func(eventlog.Record) bool) error {
	first := v.log.First()
	const step = 64
	for hi >= first && hi > 0 {
		lo := first
		if hi >= first+step {
			lo = hi - step + 1
		}
		recs, err := v.readRange(lo, hi)
		if err != nil {
			return err
		}
		for i := len(recs) - 1; i >= 0; i-- {
			if f(recs[i]) {
				return nil
			}
		}
		hi = lo - 1
	}
	return nil
}

// latestISR finds the ISR in effect after offset upto: the last ISR record
// at or before it, or the initial ISR (every peer) if there is none.
func (v *logView) latestISR(upto eventlog.Offset, peers []NodeID) (isrView, error) {
	var found *isrView
	var decodeErr error
	err := v.scanBack(upto, func(r eventlog.Record) bool {
		if r.Type != TypeISR {
			return false
		}
		isr, err := isrFromRecord(r)
		if err != nil {
			decodeErr = err
			return true
		}
		found = &isr
		return true
	})
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return isrView{}, err
	}
	if found != nil {
		return *found, nil
	}
	if v.base != nil && v.base.at <= upto {
		// The scan reached the compaction point: the ISR in effect there.
		return *v.base, nil
	}
	return initialISR(peers), nil
}

func initialISR(peers []NodeID) isrView {
	members := make([]ISRMember, len(peers))
	for i, p := range peers {
		members[i] = ISRMember{ID: p}
	}
	sortMembers(members)
	return isrView{members: members}
}

// isrRecord returns the ISR record at offset at if the log holds one there
// of epoch epoch (log matching: then it is the record that was meant), and
// false if it does not.
func (v *logView) isrRecord(at eventlog.Offset, epoch eventlog.Epoch) (isrView, bool, error) {
	if at != 0 && at < v.log.First() && v.base != nil && v.base.at == at && v.base.epoch == epoch {
		return *v.base, true, nil
	}
	if at == 0 || at < v.log.First() || at > v.last {
		return isrView{}, false, nil
	}
	recs, err := v.read(at, 1)
	if err != nil {
		return isrView{}, false, err
	}
	if r := recs[0]; r.Type != TypeISR || r.Epoch != epoch {
		return isrView{}, false, nil
	}
	isr, err := isrFromRecord(recs[0])
	if err != nil {
		return isrView{}, false, err
	}
	return isr, true, nil
}

// isrUpTo returns the ISR in effect after offset upto, given cur, the latest
// ISR record of the log: it follows the chain of ISR records back (reading
// one record per ISR change, not the log), and scans only where the chain is
// missing (records written before it existed) or broken.
func (v *logView) isrUpTo(cur isrView, upto eventlog.Offset, peers []NodeID) (isrView, error) {
	for cur.at > upto {
		if !cur.chained {
			return v.latestISR(upto, peers)
		}
		if cur.prevAt == 0 {
			return initialISR(peers), nil
		}
		prev, ok, err := v.isrRecord(cur.prevAt, cur.prevEpoch)
		if err != nil {
			return isrView{}, err
		}
		if !ok {
			return v.latestISR(upto, peers)
		}
		cur = prev
	}
	return cur, nil
}
