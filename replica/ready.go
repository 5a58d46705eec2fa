package replica

import "github.com/replichat/replichat/eventlog"

// Ready is the work the caller must do, in this order, before calling
// Advance (see the package documentation for the full contract):
//
//  1. If HardState is non-nil, persist it: SetMeta(HardStateKey, EncodeHardState(*HardState)).
//  2. If Truncate, call Truncate(TruncateAfter) (the log moves the removed
//     records to its rollback area).
//  3. If Records is non-empty, Append(Records).
//  4. AddEpoch each of Epochs, in order (after Append: an entry's start may
//     be the offset of a record appended in step 3).
//  5. If DiscardRolledBack > 0, DiscardRolledBack(DiscardRolledBack).
//  6. Send Messages. None may leave before steps 1-5 are durable: an
//     acknowledgement or a vote must never precede what it vouches for.
//  7. Apply the records up to Commit to the state machine, in offset order.
//     If the caller had applied records beyond TruncateAfter (possible only
//     after a partition forked the log), it must first rebuild its state
//     from the log.
//  8. Call Advance(rd).
type Ready struct {
	// HardState, when non-nil, must be persisted BEFORE Messages are sent.
	HardState *HardState
	// Truncate asks to durably remove every record after TruncateAfter
	// (into the rollback area) BEFORE Records are appended.
	Truncate      bool
	TruncateAfter eventlog.Offset
	// Records to append durably, contiguous, following the log's last offset
	// once the truncation (if any) is done. BEFORE Messages are sent.
	Records []eventlog.Record
	// Epochs are epoch history entries to add, after Records are appended.
	Epochs []eventlog.EpochStart
	// DiscardRolledBack is how many entries to remove from the front of the
	// rollback area: they were re-submitted and are now committed.
	DiscardRolledBack int
	// Messages to send once everything above is durable. Losing some is
	// fine; sending them early is not.
	Messages []Message
	// Commit is the highest offset safe to apply: durable on every member of
	// the ISR. It only moves backwards after a partition forked the log (then
	// Truncate is set below the previous commit).
	Commit eventlog.Offset
}

// empty reports whether rd holds no work but an unchanged commit.
func (rd *Ready) empty() bool {
	return rd.HardState == nil && !rd.Truncate && len(rd.Records) == 0 && len(rd.Epochs) == 0 &&
		rd.DiscardRolledBack == 0 && len(rd.Messages) == 0
}
