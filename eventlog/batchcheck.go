package eventlog

import (
	"fmt"
	"slices"
)

// batchState is what checking a Batch needs to know of the log it goes to.
type batchState struct {
	first, last          Offset
	lastEpoch, baseEpoch Epoch
	epochs               []EpochStart
	// rolled is the number of records the rollback area holds.
	rolled uint64
}

// batchPlan is a checked Batch: what each of its steps does to the log.
type batchPlan struct {
	// truncate is true when the truncation removes records (TruncateAfter
	// below Last()); a Truncate at or past the end is a step that does
	// nothing, as Truncate is.
	truncate bool
	// truncEpoch and truncEpochs are LastEpoch and the epoch history once
	// truncated; moved is how many records the truncation moves to the
	// rollback area.
	truncEpoch  Epoch
	truncEpochs []EpochStart
	moved       uint64
	// encoded holds EncodeRecord of each of Records.
	encoded [][]byte
	// epochs is the epoch history after step 5 (a new slice when Epochs is
	// not empty).
	epochs []EpochStart
}

// checkBatch checks b against a log in state s as the steps would be checked
// one by one (SetMeta, Truncate, SetMeta, Append, AddEpoch each time,
// DiscardRolledBack), each against the state the steps before it leave, with
// each method's own checks in its own order, and returns the first error
// they would return. unwritable is the error every write to the log returns
// (ErrClosed, ErrReadOnly), nil if it is writable; SetMeta checks its
// arguments before it, the other methods after. epochAt returns the epoch of
// a retained record (only asked for offsets in [s.first, s.last]).
//
// A Batch has a step for each meta value, for Truncate when set, for Records
// when not empty, for each epoch entry, and for DiscardRolledBack when not 0
// (so a negative count is ErrOutOfRange, as DiscardRolledBack(n) is).
func checkBatch(b *Batch, s batchState, unwritable error, epochAt func(Offset) (Epoch, error)) (batchPlan, error) {
	var p batchPlan
	metas := func(ms []MetaValue) error {
		for _, m := range ms {
			if err := checkMeta(m.Name, m.Value); err != nil {
				return err
			}
			if unwritable != nil {
				return fmt.Errorf("set meta %q: %w", m.Name, unwritable)
			}
		}
		return nil
	}
	if err := metas(b.Meta); err != nil {
		return p, err
	}
	last, lastEpoch, epochs, rolled := s.last, s.lastEpoch, s.epochs, s.rolled
	if b.Truncate {
		after := b.TruncateAfter
		if unwritable != nil {
			return p, fmt.Errorf("truncate after %d: %w", after, unwritable)
		}
		if after < last {
			if after+1 < s.first {
				return p, fmt.Errorf("truncate after %d (first %d): %w", after, s.first, ErrCompacted)
			}
			e := s.baseEpoch
			if after >= s.first {
				var err error
				if e, err = epochAt(after); err != nil {
					return p, fmt.Errorf("truncate after %d: %w", after, err)
				}
			}
			p.truncate, p.truncEpoch, p.moved = true, e, uint64(last-after)
			p.truncEpochs = truncateEpochs(epochs, after)
			last, lastEpoch, epochs, rolled = after, e, p.truncEpochs, rolled+p.moved
		}
	}
	if err := metas(b.MetaAfterTruncate); err != nil {
		return p, err
	}
	if recs := b.Records; len(recs) > 0 {
		if unwritable != nil {
			return p, fmt.Errorf("append: %w", unwritable)
		}
		if err := checkAppend(recs, last, lastEpoch); err != nil {
			return p, err
		}
		p.encoded = make([][]byte, len(recs))
		for i, r := range recs {
			v, err := EncodeRecord(r)
			if err != nil {
				return p, fmt.Errorf("append offset %d: %w", r.Offset, err)
			}
			p.encoded[i] = v
		}
		last = recs[len(recs)-1].Offset
	}
	p.epochs = epochs
	if len(b.Epochs) > 0 {
		p.epochs = slices.Grow(slices.Clone(epochs), len(b.Epochs))
		for _, e := range b.Epochs {
			if unwritable != nil {
				return p, fmt.Errorf("add epoch %d: %w", e.Epoch, unwritable)
			}
			if err := checkAddEpoch(p.epochs, e, last); err != nil {
				return p, err
			}
			p.epochs = append(p.epochs, e)
		}
	}
	if n := b.DiscardRolledBack; n != 0 {
		if unwritable != nil {
			return p, fmt.Errorf("discard %d rolled back: %w", n, unwritable)
		}
		if n < 0 || uint64(n) > rolled {
			return p, fmt.Errorf("discard %d rolled back of %d: %w", n, rolled, ErrOutOfRange)
		}
	}
	return p, nil
}
