package eventlog

import (
	"fmt"
	"slices"
)

// The checks below are shared by every implementation so that they agree on
// which input is rejected with which error: the conformance suite compares
// them against one model.

// MaxMetaName is the longest name SetMeta accepts, in bytes.
const MaxMetaName = 64

// MaxMetaValue is the largest value SetMeta accepts, in bytes. Meta holds
// small hard state (epoch, vote), not data: the bound keeps it one cheap write.
const MaxMetaValue = 64 << 10

// checkAppend verifies that recs may follow a log ending at (last, lastEpoch).
func checkAppend(recs []Record, last Offset, lastEpoch Epoch) error {
	if len(recs) == 0 {
		return fmt.Errorf("append no records: %w", ErrNotContiguous)
	}
	want, epoch := last+1, lastEpoch
	for i, r := range recs {
		if r.Offset != want {
			return fmt.Errorf("append record %d: offset %d, want %d: %w", i, r.Offset, want, ErrNotContiguous)
		}
		if r.Epoch < epoch {
			return fmt.Errorf("append offset %d: epoch %d below %d: %w", r.Offset, r.Epoch, epoch, ErrNotContiguous)
		}
		want, epoch = want+1, r.Epoch
	}
	return nil
}

// checkAddEpoch verifies that e may extend history on a log whose last
// offset is last.
func checkAddEpoch(history []EpochStart, e EpochStart, last Offset) error {
	if e.Epoch == 0 {
		return fmt.Errorf("add epoch 0: %w", ErrEpochOrder)
	}
	if e.Start == 0 || e.Start > last+1 {
		return fmt.Errorf("add epoch %d: start %d outside [1, %d]: %w", e.Epoch, e.Start, last+1, ErrEpochOrder)
	}
	if n := len(history); n > 0 {
		prev := history[n-1]
		if e.Epoch <= prev.Epoch {
			return fmt.Errorf("add epoch %d: not after epoch %d: %w", e.Epoch, prev.Epoch, ErrEpochOrder)
		}
		if e.Start < prev.Start {
			return fmt.Errorf("add epoch %d: start %d before epoch %d's start %d: %w",
				e.Epoch, e.Start, prev.Epoch, prev.Start, ErrEpochOrder)
		}
	}
	return nil
}

// checkEpochs verifies a whole history for a log whose last offset is last,
// as Restore receives it.
func checkEpochs(history []EpochStart, last Offset) error {
	for i, e := range history {
		if err := checkAddEpoch(history[:i], e, last); err != nil {
			return err
		}
	}
	return nil
}

// truncateEpochs returns history without the entries whose Start > after.
// Starts are non-decreasing, so those entries form a suffix.
func truncateEpochs(history []EpochStart, after Offset) []EpochStart {
	i := len(history)
	for i > 0 && history[i-1].Start > after {
		i--
	}
	return slices.Clip(history[:i])
}

// checkMeta verifies a meta name and (for SetMeta) value size.
func checkMeta(name string, value []byte) error {
	if name == "" || len(name) > MaxMetaName {
		return fmt.Errorf("meta name %q: length not in [1, %d]: %w", name, MaxMetaName, ErrInvalidMeta)
	}
	for _, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if !ok {
			return fmt.Errorf("meta name %q: character %q not in [A-Za-z0-9_.-]: %w", name, c, ErrInvalidMeta)
		}
	}
	if len(value) > MaxMetaValue {
		return fmt.Errorf("meta %q: %d bytes exceeds %d: %w", name, len(value), MaxMetaValue, ErrInvalidMeta)
	}
	return nil
}

// cloneBytes copies b, keeping nil as nil so that a record read back equals
// the record written (a msgpack round trip also keeps the difference).
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// cloneRecord returns r with its own copy of Data.
func cloneRecord(r Record) Record {
	r.Data = cloneBytes(r.Data)
	return r
}
