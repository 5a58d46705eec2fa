// Package eventlog is the durable, append-only log of events that every
// replica keeps: the single source of truth from which chat state is derived.
//
// # Model
//
// A log is a dense sequence of [Record]s numbered by [Offset], starting at 1.
// Offset 0 means "none" (an empty log has Last() == 0). Every record carries
// the [Epoch] of the primary that wrote it; epochs never decrease along the
// log. The log also keeps an epoch history: for every epoch the replica has
// adopted, the offset its first record has (or would have), including epochs
// that wrote nothing. Replication uses it to find where two logs diverge.
//
// The log knows nothing about replication or chat: a record's payload is
// opaque bytes plus a type tag.
//
// # Durability
//
// Append returns only once the records are on stable storage (fsync). Many
// callers appending at once share one sync through [GroupCommitter], so the
// throughput is not bounded by one fsync per event. [BadgerLog] opens Badger
// with SyncWrites, for every transaction in the database: its documentation
// says why DB.Sync after our own writes would not be enough.
//
// # Batches
//
// A replication step persists several things at once: the hard state, a
// truncation, the index of the latest ISR record, records, epoch entries and
// a discard from the rollback area. [Batch] holds them all, in the order that
// keeps every prefix a valid state, and [BatchWriter]'s Write writes them
// with the result, and the errors, of the single-step methods called one by
// one; it checks the whole batch first, so an invalid one writes nothing.
// Both implementations are BatchWriters. [BadgerLog.Write] makes a batch that
// fits one Badger transaction (15% of the memtable, about 2.4 MB by default;
// a truncation included) one synced transaction, all or nothing after a
// crash: an epoch change costs one fsync instead of four. A bigger batch is split into
// transactions such that a crash leaves the state after a prefix of its
// steps. eventlogtest checks Write against the steps for both logs.
//
// # Integrity
//
// Every stored record carries a CRC-32C over its encoded fields. A record
// that fails its checksum, or whose stored offset does not match its key, is
// reported as a [*CorruptError] naming the offset; it is never skipped.
//
// # Implementations
//
// [BadgerLog] keeps the log in a Badger database, one per replica (the
// replica's chat state, derived from the log, is kept in a database of its
// own). [MemoryLog] keeps it in memory for tests and the
// deterministic simulator; [MemoryLog.Clone] is a crashed node's disk. Both
// pass the same conformance suite, eventlogtest.Run, and eventlogtest.RunDurable
// checks what survives a restart.
package eventlog
