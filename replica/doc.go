// Package replica is the replication protocol of replichat: primary-backup
// over a durable event log, in "all" mode (DESIGN.md section 3): a record is
// committed once every member of the in-sync replica set (ISR) holds it
// durably, so N replicas keep working with N-1 crashed. The protocol and the
// reasons for each rule are in docs/replication.md.
//
// # The deterministic core
//
// [Node] is the protocol and nothing else: a state machine in the shape of
// etcd raft's RawNode. It starts no goroutines, does no I/O, reads no clock
// (time arrives as [Node.Tick]) and uses no global randomness (election
// jitter comes from a Node-owned source seeded by Config.Seed and the ID). It
// reads its durable log only through the synchronous, read-only [LogReader];
// everything it wants written or sent comes out of [Node.Ready]. A seeded
// simulator (replica/replicatest) can therefore run thousands of fault
// scenarios in seconds and replay any of them. Node is not safe for
// concurrent use: one goroutine (the shell) owns it.
//
// # The caller's contract
//
// The shell owns the Node, the eventlog.Log it was created with, the
// transport and the state machine. Its loop:
//
//  1. Feed inputs: call Tick every TickInterval; Step with each message
//     received from a peer (decoded with DecodeMessage; errors other than
//     ErrStopped may be logged and ignored); Propose with client records on
//     the primary. If the loop notices it ran late (the process was stopped,
//     the machine swapped), call Paused with the number of ticks missed.
//  2. When HasReady (or after every batch of inputs), call Ready and do, in
//     order:
//     a. send EarlyMessages (the primary's Appends) at once: they may leave
//     before the writes below are durable, which overlaps this node's write
//     with the backups' (the primary counts itself toward commit only after
//     Advance);
//     b. if HardState != nil: SetMeta(HardStateKey, EncodeHardState(...));
//     c. if Truncate: Truncate(TruncateAfter) (records move to the rollback
//     area);
//     d. if ISRIndex != nil: SetMeta(ISRIndexKey, EncodeISRIndex(...)),
//     after c and before e (so that a restart finds the latest ISR record
//     without scanning the log);
//     e. Append(Records);
//     f. AddEpoch for each of Epochs, in order;
//     g. DiscardRolledBack(DiscardRolledBack) if positive.
//     All of b-g must be durable (synced) before step 3: an acknowledgement
//     or a vote must never leave before what it vouches for.
//  3. Send Messages (EncodeMessage), each to its To. Sending is
//     best-effort: a lost message is retried by the protocol; so is sending
//     EarlyMessages.
//  4. Apply committed records, up to Commit, in offset order, to the state
//     machine (records of type "replica.*" only advance its applied offset).
//     If the state machine had applied records beyond TruncateAfter (only
//     possible after a partition forked the log), rebuild it from the log
//     first. A client request is answered when the primary applies the
//     record carrying its (client id, sequence); requests whose records were
//     truncated are never applied, so their clients time out and retry with
//     the same sequence.
//  5. Call Advance(rd). Nothing else may be called between Ready and
//     Advance (the Node panics: it is a bug in the shell).
//
// If a write in step 2 fails, the shell must stop and recreate the Node from
// the log after the fault is fixed: the Node believes the Ready was done.
//
// # Roles and time
//
// Every node sends a heartbeat to every other node each HeartbeatTicks.
// Silence of FailoverTicks is how a crash is detected; the network's delays
// must stay well below it (see Config.PauseTicks for the exact margin).
//
// # Protocol records
//
// The core writes two record types into the log itself: TypeEpochStart,
// the first record of every epoch, and TypeISR, every ISR change (effective
// from the offset where it is appended). They carry msgpack payloads
// (EpochStartEvent, ISRChange). Applications skip them. Each ISR record
// names the one before it, and the meta value ISRIndexKey names the latest,
// so that NewNode reads a record or two, never the whole log.
//
// # Compaction
//
// Node.Compact discards the log up to an offset that a snapshot of the
// state covers (the caller keeps the snapshot; Ready.CompactTo, with the ISR
// in effect there as the log's ISR base). A backup whose next record is
// compacted is sent MsgSnapshot: the caller streams it a snapshot, which it
// installs and catches up from by offset. A node whose log diverges from
// its primary's before its compacted part stops (ErrForkTooDeep): the
// caller compacts only what no fork can reach (docs/replication.md,
// "Snapshots and compaction", for the rules the shell follows).
//
// # Not implemented yet
//
// Majority mode (Config.Mode = ModeMajority is rejected by NewNode).
package replica
