package eventlog

// MetaValue is one named value of a Batch (see SetMeta).
type MetaValue struct {
	Name  string
	Value []byte
}

// Batch is one write of everything a replication step persists (the
// replica's Ready), in the order that keeps every prefix of it a valid
// state after a crash:
//
//  1. Meta (the replica's hard state: its epoch and vote);
//  2. the truncation, if Truncate: every record after TruncateAfter moves
//     to the rollback area (as Truncate);
//  3. MetaAfterTruncate (what must describe the log once truncated: the
//     index of its latest ISR record);
//  4. Records, appended (as Append);
//  5. Epochs, added to the epoch history in order (as AddEpoch);
//  6. DiscardRolledBack entries removed from the rollback area's front.
//
// A Log that implements BatchWriter writes it in as few synced
// transactions as it can: one, when there is no truncation and it fits a
// transaction (etcd's Save(hardState, entries)), so that an epoch change
// costs one fsync, not three.
type Batch struct {
	Meta              []MetaValue
	Truncate          bool
	TruncateAfter     Offset
	MetaAfterTruncate []MetaValue
	Records           []Record
	Epochs            []EpochStart
	DiscardRolledBack int
}

// Empty reports whether b writes nothing.
func (b *Batch) Empty() bool {
	return len(b.Meta) == 0 && !b.Truncate && len(b.MetaAfterTruncate) == 0 && len(b.Records) == 0 &&
		len(b.Epochs) == 0 && b.DiscardRolledBack == 0
}

// BatchWriter is the optional capability of a Log to write a Batch at once.
// Write's result is as if the steps had been done one by one with SetMeta,
// Truncate, Append, AddEpoch and DiscardRolledBack, with the same errors
// for the same invalid input; after an error, a prefix of the steps (in the
// order above, and of the records) may be durable, never anything else.
//
// The steps are: one per meta value, the truncation when Truncate is set
// (a no-op at or past the end, as Truncate is), the records when there are
// any, one per epoch entry, and the discard when DiscardRolledBack is not 0
// (so a negative count is ErrOutOfRange). An empty batch has no step: Write
// returns nil without looking at the log. Both implementations check the
// whole batch before writing anything, so an invalid batch writes nothing;
// only a storage error can leave a prefix.
type BatchWriter interface {
	Write(b Batch) error
}
