package replica

import (
	"fmt"

	"github.com/replichat/replichat/eventlog"
)

// Storage is the write side of the durable log that persisting a Ready
// needs (a subset of eventlog.Log). A Storage that also implements
// eventlog.BatchWriter gets each Ready as one Batch.
type Storage interface {
	SetMeta(name string, value []byte) error
	Truncate(after eventlog.Offset) error
	Append(recs []eventlog.Record) error
	AddEpoch(e eventlog.EpochStart) error
	DiscardRolledBack(n int) error
}

// Batch returns the writes rd asks for, in the order of the caller's
// contract (steps 1 to 6 of Ready): the one description of that order, which
// Persist and every other executor of a Ready use.
func (rd *Ready) Batch() (eventlog.Batch, error) {
	b := eventlog.Batch{Truncate: rd.Truncate, TruncateAfter: rd.TruncateAfter, Records: rd.Records,
		Epochs: rd.Epochs, DiscardRolledBack: rd.DiscardRolledBack}
	if rd.HardState != nil {
		v, err := EncodeHardState(*rd.HardState)
		if err != nil {
			return eventlog.Batch{}, err
		}
		b.Meta = []eventlog.MetaValue{{Name: HardStateKey, Value: v}}
	}
	if rd.ISRIndex != nil {
		v, err := EncodeISRIndex(*rd.ISRIndex)
		if err != nil {
			return eventlog.Batch{}, err
		}
		b.MetaAfterTruncate = append(b.MetaAfterTruncate, eventlog.MetaValue{Name: ISRIndexKey, Value: v})
	}
	if rd.ISRBase != nil {
		v, err := EncodeISRBase(*rd.ISRBase)
		if err != nil {
			return eventlog.Batch{}, err
		}
		b.MetaAfterTruncate = append(b.MetaAfterTruncate, eventlog.MetaValue{Name: ISRBaseKey, Value: v})
	}
	return b, nil
}

// Compacter is the optional capability of a Storage to discard a prefix of
// the log (eventlog Compact); needed for a Ready with CompactTo.
type Compacter interface {
	Compact(upto eventlog.Offset) error
}

// Persist makes everything rd asks to persist durable (steps 1 to 6 of
// Ready), as one eventlog.Batch when st can write one, else step by step in
// the same order. The caller sends rd.Messages only after it returns nil;
// after an error it must stop using the Node (see the package doc).
func Persist(st Storage, rd Ready) error {
	b, err := rd.Batch()
	if err != nil {
		return err
	}
	if !b.Empty() {
		if bw, ok := st.(eventlog.BatchWriter); ok {
			if err := bw.Write(b); err != nil {
				return fmt.Errorf("persist ready: %w", err)
			}
		} else if _, err := PersistSteps(st, b, -1); err != nil {
			return err
		}
	}
	return compact(st, rd.CompactTo)
}

// compact discards the log up to upto (a Ready's last step, once the ISR
// base describing the compaction point is durable).
func compact(st Storage, upto eventlog.Offset) error {
	if upto == 0 {
		return nil
	}
	c, ok := st.(Compacter)
	if !ok {
		return fmt.Errorf("compact to %d: the log cannot compact", upto)
	}
	return wrap(fmt.Sprintf("compact to %d", upto), c.Compact(upto))
}

// PersistSteps writes the first n steps of b one by one (all of them if n
// is negative) and returns how many steps b has: what a crash in the middle
// of persisting leaves on the disk, for the simulator. A step is one meta
// value, the truncation, the records, one epoch entry or the discard.
func PersistSteps(st Storage, b eventlog.Batch, n int) (steps int, err error) {
	do := func(f func() error) error {
		steps++
		if n >= 0 && steps > n {
			return nil
		}
		return f()
	}
	for _, m := range b.Meta {
		if err := do(func() error { return wrap("persist "+m.Name, st.SetMeta(m.Name, m.Value)) }); err != nil {
			return steps, err
		}
	}
	if b.Truncate {
		if err := do(func() error {
			return wrap(fmt.Sprintf("truncate after %d", b.TruncateAfter), st.Truncate(b.TruncateAfter))
		}); err != nil {
			return steps, err
		}
	}
	for _, m := range b.MetaAfterTruncate {
		if err := do(func() error { return wrap("persist "+m.Name, st.SetMeta(m.Name, m.Value)) }); err != nil {
			return steps, err
		}
	}
	if len(b.Records) > 0 {
		if err := do(func() error {
			return wrap(fmt.Sprintf("append offsets %d-%d", b.Records[0].Offset, b.Records[len(b.Records)-1].Offset),
				st.Append(b.Records))
		}); err != nil {
			return steps, err
		}
	}
	for _, e := range b.Epochs {
		if err := do(func() error {
			return wrap(fmt.Sprintf("add epoch %d at %d", e.Epoch, e.Start), st.AddEpoch(e))
		}); err != nil {
			return steps, err
		}
	}
	if b.DiscardRolledBack > 0 {
		if err := do(func() error {
			return wrap(fmt.Sprintf("discard %d rolled-back records", b.DiscardRolledBack), st.DiscardRolledBack(b.DiscardRolledBack))
		}); err != nil {
			return steps, err
		}
	}
	return steps, nil
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
