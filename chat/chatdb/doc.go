// Package chatdb is the Badger-backed chat.Store: the materialized chat
// state of a replica.
//
// # Layout
//
// A replica's data directory holds two Badger databases:
//
//	<data>/log    the event log (eventlog.BadgerLog), SyncWrites on
//	<data>/state  the chat state (this package's DB), SyncWrites off
//
// Every key of the chat state is stored under "c/". The prefix dates from
// when the state shared the log's database; it is kept so that New can still
// put the state in any database a caller brings (tests, chatreplay's scratch
// state) without colliding with other keys.
//
// # Durability
//
// The state is derived from the log: chat.State stores its applied offset in
// the same transaction as the changes of the records it applied, and applies
// only committed records, which the log has fsynced first. So the state
// needs no fsync of its own. Open sets SyncWrites off: a commit is written to
// Badger's write-ahead log (in the page cache) but not waited for on disk.
// This matters for latency: with the state in the log's database, every
// state transaction paid an fsync of its own, serialized after the log's.
//
// What each failure can lose:
//   - A process crash (SIGKILL, panic) loses nothing committed: the
//     write-ahead log is in the kernel's page cache and is replayed at the
//     next Open.
//   - A power loss (or kernel crash) may lose a suffix of the applied
//     state, never a part of a transaction (Badger checksums its log entries
//     and truncates a torn tail): the state reopens consistent as of some
//     earlier applied offset, and the replication shell replays the rest
//     from the log, which is fsynced and loses nothing acknowledged.
//
// The one write that must not silently roll back is a reset of the state
// (after a fork truncated the log below what was applied): losing it could
// leave records that are no longer in the log applied to the state. Its
// caller calls Sync after it.
package chatdb
