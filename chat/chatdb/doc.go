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
// The writes that must not silently roll back are a reset of the state and
// a rollback by undo records (chat.State.RollbackTo), both after a fork
// truncated the log below what was applied: losing one could leave records
// that are no longer in the log applied to the state. Their caller calls
// Sync after them (chat/server's StateMachine.SetSync).
//
// Undo records (chat's local "~undo/" keys) are written in the transaction
// of the batch they undo, so a lost suffix of the state loses their undo
// records with it, and a rollback transaction restores its batches'
// values, the applied offset and deletes their undo records at once:
// whatever Badger keeps of them is a consistent state at a batch boundary.
//
// # Deleted data
//
// A key the state deletes (a message deleted by both its sender and its
// recipient, a deleted account's records, an undo record dropped) stays in
// Badger's files, in a memtable's write-ahead log or in tables, until the
// memtable is flushed and a compaction merges the deletion with the old
// value. DB.Purge forces both without blocking a write (badgerdb.Purge);
// chat/server's StateMachine calls it once the log no longer holds the
// deleted data either, which is what bounds how long a deleted message is
// readable on disk.
package chatdb
