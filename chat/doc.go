// Package chat is the chat domain: it turns client commands into events
// (Decide) and folds events into state (State.Apply). It is pure: no I/O
// beyond the injected Store, no goroutines, no clock, no randomness. All
// non-deterministic inputs (time, password salts) are chosen by the primary
// in Decide or stamped on the record, and message ids are derived from the
// request (MessageID) and carried in the event, so applying the same
// records gives the same state, byte for byte, on every replica.
//
// # Applying
//
// State.Apply applies records in offset order, each batch in one store
// transaction together with the applied offset, so a restart resumes
// exactly and nothing is applied twice. Records whose type does not start
// with "chat." belong to the replica layer and only advance the offset.
// Applying is total: an event that became invalid between Decide and Apply
// (a sender deleted meanwhile, a name taken by a concurrent register) is not
// an Apply error; it stores an error Result for its request.
//
// # Exactly once
//
// Every client event carries the request's (client id, seq). The result of
// each is kept in a replicated dedup table, and an event whose request
// already has a result is skipped; State.Result answers a retry with the
// original outcome. The table keeps at least the last DedupWindow results
// per client (a retry of an older seq is skipped and answered with
// ErrExpiredRequest) and forgets clients idle for DedupIdleNanos of log time
// (record Time, the maximum seen so far; up to two hours later, as a client's
// last activity is recorded to the hour), so it is bounded and identical on
// every replica.
//
// Below the window the table keeps the holes: the seqs it passed without a
// result, never applied here (refused by Decide, answered not_primary, or
// applied only on the losing side of a forked log). A record in a hole is
// applied, not dropped as a duplicate: this is what lets a replica that
// truncated a fork's losing side re-submit its records after the clients
// made hundreds of requests on the winning side. Holes are bounded per
// client (maxHolesPerClient ranges, 4096); below the oldest one kept
// (HoleFloor) the table cannot tell, and it refuses a live request
// (ErrExpiredRequest) but applies a re-submission (eventlog.Record
// Resubmitted), deduplicating a send by its message id. See dedup.go.
//
// ApplyWithResults reports what became of every client record: applied,
// rejected (a domain error), skipped as a duplicate or as expired, and
// whether it was a re-submission; the server hands results to the waiting
// requests and logs and counts what became of re-submissions.
//
// # Users
//
// Accounts have a stable id (from 1) assigned at apply time from a counter
// in the state. Names are 1-32 bytes of [A-Za-z0-9_.-], case-sensitive.
//
// A user id names the same account on replicas that applied the same log,
// but not on both sides of a forked one: each side of a partition assigns
// the next ids to the accounts it registers. So an account also has an
// origin, AccountOrigin of its register request (client id, seq), the same
// on every side since a register is re-submitted with its request; the
// user record keeps it, with an index from it to the local id, and every
// event that names a user carries the origin next to the id. Apply takes
// the account of the event's id when it has the event's origin (one read,
// as before), else the one the index names, and rejects the event with
// ErrUnknownUser when no account of that origin lives on this side (never
// registered here, or deleted). Events and accounts without an origin
// (logs written before origins existed) mean the id alone. See origin.go.
// Passwords are hashed once, in Decide, with argon2id and a per-account
// 16-byte salt into a PHC string that carries its parameters; events and
// state hold only that hash. Login (State.VerifyLogin) is a query.
//
// # Messages
//
// A message id is a function of the request that sends it,
// MessageID(client id, seq), chosen in Decide (Env.NewMessageID) and carried
// in the event, so it survives failover and re-submission, and a retry
// decided by two primaries on both sides of a fork gets the same id. Apply
// stores the message under the event's id, or, if that one is taken, under
// the next free id of a deterministic probe sequence; the Result (what the
// client is told) carries the id stored. Ids fit in 53 bits (safe as JSON
// numbers); logs written when ids were epoch<<32|n replay under those ids.
// Messages reference
// users by id (and events by id and origin), so an account registered
// under a deleted account's name never sees the old account's messages. A message has two views, the
// sender's and the recipient's, each an entry in that user's history index;
// the recipient's unread queue holds it until a Deliver. Indexes are keyed
// by the offset of the send, so they are in log order, and only the pages
// a query asks for are loaded.
//
// DeleteMessages removes the caller's view of messages it sent or received
// (all or none). The message itself is dropped when no view remains.
//
// DeleteAccount removes the account, its name and its views (history and
// unread queue). Messages it sent remain in their recipients' views, still
// showing the sender's name as it was; the name becomes free for a new
// account, which does not inherit them. The account and name go at once;
// its views, unbounded in number, are purged at most 256 per applied record
// afterwards, so that no record needs an unbounded transaction.
//
// # Storage
//
// State keeps everything in a Store (MemStore for tests and the simulator,
// chatdb for Badger). Keys are described in keys.go. Snapshots stream every
// replicated key (WriteSnapshot, RestoreSnapshot); Digest hashes them; Check
// verifies the invariants between indexes, messages, users and the dedup
// table (holes included). Local keys, this replica's own bookkeeping, sort
// after all of them and are left out of all three.
//
// # Rollback
//
// A fork (only under partitions) may truncate the log below what the state
// applied. RollbackTo undoes the batches applied after an offset from undo
// records, in proportion to what is undone, instead of a rebuild from the
// whole log. Apply writes a batch's undo record (the value before the batch
// of every key it wrote) in the batch's transaction, only when the batch
// ends above the stable offset (SetStable: what every replica holds
// durably, which no truncation reaches), so a healthy cluster pays nothing.
// Undo records are local keys, dropped once stable and bounded in number
// and size; past the bound, RollbackTo fails with ErrUndoUnavailable and
// the caller resets the state and replays the log. Each rollback
// transaction undoes whole batches with the applied offset, so a crash
// leaves an earlier consistent state, marked as an unfinished rollback
// (*IncompleteRollbackError: Apply refuses it), from which RollbackTo
// finishes. See undo.go.
//
// Apply is the hot path of every replica. A batch's transaction goes
// through a write-back cache (txcache.go): each key is read from the store
// at most once and written once, at the end, and the counters, users and
// dedup client records stay cached across batches (State is its store's
// only writer; RollbackTo and RestoreSnapshot reset those caches). The
// cache is also where a batch's undo record is captured. The values read and written on every request have
// hand-written msgpack codecs (codec.go) producing Marshal's exact bytes.
package chat
