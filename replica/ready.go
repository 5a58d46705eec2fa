package replica

import "github.com/replichat/replichat/eventlog"

// Ready is the work the caller must do, in this order, before calling
// Advance (see the package documentation for the full contract):
//
//  0. Send EarlyMessages. They may leave before (or while) steps 1-6 are
//     done: they vouch for nothing this node has yet to persist.
//  1. If HardState is non-nil, persist it: SetMeta(HardStateKey, EncodeHardState(*HardState)).
//  2. If Truncate, call Truncate(TruncateAfter) (the log moves the removed
//     records to its rollback area).
//  3. If ISRIndex is non-nil, SetMeta(ISRIndexKey, EncodeISRIndex(*ISRIndex)):
//     after the truncation and before the append, so that after a crash the
//     record it names, if present, is the log's latest ISR record.
//  4. If Records is non-empty, Append(Records).
//  5. AddEpoch each of Epochs, in order (after Append: an entry's start may
//     be the offset of a record appended in step 4).
//  6. If DiscardRolledBack > 0, DiscardRolledBack(DiscardRolledBack).
//  7. Send Messages. None may leave before steps 1-6 are durable: an
//     acknowledgement or a vote must never precede what it vouches for.
//  8. Apply the records up to Commit to the state machine, in offset order.
//     If the caller had applied records beyond TruncateAfter (possible only
//     after a partition forked the log), it must first rebuild its state
//     from the log.
//  9. Call Advance(rd).
type Ready struct {
	// EarlyMessages are the primary's Appends that may be sent at once,
	// before the writes below are durable, so that the backups persist the
	// records while this node does (Raft thesis 10.2.1): the primary counts
	// itself toward commit only once it has persisted them (Advance). Each
	// may precede Messages to the same peer. Empty whenever HardState or
	// Truncate is set, and never carrying a protocol record (epoch start,
	// ISR) not yet durable here: see Node.earlyOK for why.
	EarlyMessages []Message
	// HardState, when non-nil, must be persisted BEFORE Messages are sent.
	HardState *HardState
	// Truncate asks to durably remove every record after TruncateAfter
	// (into the rollback area) BEFORE Records are appended.
	Truncate      bool
	TruncateAfter eventlog.Offset
	// ISRIndex, when non-nil, locates the log's latest ISR record once this
	// Ready is done; persist it after Truncate and before Records.
	ISRIndex *ISRIndex
	// Records to append durably, contiguous, following the log's last offset
	// once the truncation (if any) is done. BEFORE Messages are sent.
	Records []eventlog.Record
	// Epochs are epoch history entries to add, after Records are appended.
	Epochs []eventlog.EpochStart
	// DiscardRolledBack is how many entries to remove from the front of the
	// rollback area: they were re-submitted and are now committed.
	DiscardRolledBack int
	// Messages to send once everything above is durable. Losing some is
	// fine; sending them early is not (unlike EarlyMessages).
	Messages []Message
	// Commit is the highest offset safe to apply: durable on every member of
	// the ISR. It only moves backwards after a partition forked the log (then
	// Truncate is set below the previous commit).
	Commit eventlog.Offset
	// Stable is an offset durable on every replica of the cluster, in or out
	// of the ISR: no truncation, on any side of any partition, can reach it.
	// A state machine needs no undo history for records up to it
	// (shell.Rollbacker). It only grows.
	Stable eventlog.Offset
	// CompactTo, when non-zero, asks to discard the records up to it
	// (eventlog Compact), after everything above is durable and ISRBase has
	// been persisted (SetMeta(ISRBaseKey, EncodeISRBase(*ISRBase))): the ISR
	// in effect at that point, which the chain of ISR records will no
	// longer reach. See Node.Compact.
	CompactTo eventlog.Offset
	ISRBase   *ISRBase
}

// empty reports whether rd holds no work but an unchanged commit.
func (rd *Ready) empty() bool {
	return rd.HardState == nil && !rd.Truncate && rd.ISRIndex == nil && len(rd.Records) == 0 && len(rd.Epochs) == 0 &&
		rd.DiscardRolledBack == 0 && len(rd.Messages) == 0 && len(rd.EarlyMessages) == 0 && rd.CompactTo == 0
}
