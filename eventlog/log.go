package eventlog

import "context"

// Log is the contract that every implementation satisfies and that
// eventlogtest.Run checks. Consumers should declare the smaller interface they
// need rather than depend on this one.
//
// Implementations are safe for concurrent use, but Append, Truncate, AddEpoch,
// Compact and Restore are expected to come from one writer at a time (the
// replica's loop or a GroupCommitter); concurrent readers are always fine.
type Log interface {
	// Append writes recs durably (synced to stable storage) before returning.
	// recs must be non-empty with recs[0].Offset == Last()+1, offsets
	// increasing by one, and epochs non-decreasing and not below the epoch of
	// the last record; otherwise ErrNotContiguous and nothing is written.
	// Append does not retain recs.
	Append(recs []Record) error
	// Read returns records in offset order starting at from, stopping once
	// their encoded size reaches maxBytes (always at least one record when
	// from <= Last()). It returns an empty slice when from > Last(), and
	// ErrCompacted when from < First() (so also for from == 0). The caller
	// owns the returned slice, including each record's Data.
	Read(from Offset, maxBytes int) ([]Record, error)
	// First is the offset of the first retained record: 1 on a log never
	// compacted. On an empty log, First() == Last()+1.
	First() Offset
	// Last is the offset of the last record, 0 if none was ever written.
	Last() Offset
	// LastEpoch is the epoch of the last record, 0 if none.
	LastEpoch() Epoch
	// Truncate durably removes every record with offset > after, and every
	// epoch history entry whose Start > after. It is a no-op when
	// after >= Last(). after == First()-1 removes every retained record;
	// below that the truncation point is compacted: ErrCompacted.
	//
	// Removed records are not thrown away: in the same atomic, durable write
	// they move to the rollback area, from which replication re-submits them
	// (DESIGN.md: divergence). Records keep every field there.
	Truncate(after Offset) error
	// RolledBack returns up to max records of the rollback area, oldest
	// truncation first (within one truncation, in offset order). The caller
	// owns the slice.
	RolledBack(max int) ([]Record, error)
	// DiscardRolledBack durably removes the first n records that RolledBack
	// would return (once they have been re-submitted). n below 0 or above
	// the number of records held is ErrOutOfRange.
	DiscardRolledBack(n int) error
	// SetMeta durably stores a small named value (e.g. the replica's hard
	// state: current epoch and vote). Names are 1 to MaxMetaName bytes of
	// [A-Za-z0-9_.-] and values at most MaxMetaValue bytes; otherwise
	// ErrInvalidMeta.
	SetMeta(name string, value []byte) error
	// Meta returns the value stored under name, ok false if none. The caller
	// owns the slice.
	Meta(name string) (value []byte, ok bool, err error)
	// Epochs returns the epoch history, oldest first. The caller owns it.
	Epochs() []EpochStart
	// AddEpoch durably appends an entry to the epoch history. Its epoch must
	// be non-zero and greater than every epoch in the history, and its start
	// at least 1, not below the last entry's start nor above Last()+1;
	// otherwise ErrEpochOrder.
	AddEpoch(e EpochStart) error
	// Compact discards records with offset <= upto (upto <= Last(), else
	// ErrOutOfRange), after which First() == upto+1; a no-op when
	// upto < First(). LastEpoch and the epoch history are kept. It is how
	// the log's disk use is bounded once a snapshot covers the prefix.
	Compact(upto Offset) error
	// Restore empties the log and makes it begin after offset last, in epoch
	// lastEpoch, with the given epoch history: what installing a snapshot
	// that covers [1, last] needs. Afterwards Last() == last, First() ==
	// last+1 and LastEpoch() == lastEpoch. last may be behind the current
	// log. epochs must satisfy AddEpoch's rules with Last() == last
	// (ErrEpochOrder). The rollback area and meta values are kept.
	Restore(last Offset, lastEpoch Epoch, epochs []EpochStart) error
	// Wait blocks until Last() > after, or ctx is done (returning ctx.Err()),
	// or the log is closed (ErrClosed).
	Wait(ctx context.Context, after Offset) error
	// Close releases the log. It is safe to call more than once.
	Close() error
}
