// Package chat is the chat domain: it turns client commands into events
// (Decide) and folds events into state (State.Apply). It is pure: no I/O
// beyond the injected Store, no goroutines, no clock, no randomness. All
// non-deterministic inputs (time, message ids, password salts) are chosen
// by the primary in Decide or stamped on the record, so applying the same
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
// # Users
//
// Accounts have a stable id (from 1) assigned at apply time from a counter
// in the state. Names are 1-32 bytes of [A-Za-z0-9_.-], case-sensitive.
// Passwords are hashed once, in Decide, with argon2id and a per-account
// 16-byte salt into a PHC string that carries its parameters; events and
// state hold only that hash. Login (State.VerifyLogin) is a query.
//
// # Messages
//
// A message id is assigned by the primary in Decide and carried in the
// event, so it survives failover and re-submission. Messages reference
// users by id, so an account registered under a deleted account's name
// never sees the old account's messages. A message has two views, the
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
// key (WriteSnapshot, RestoreSnapshot); Digest hashes them; Check verifies
// the invariants between indexes, messages, users and the dedup table.
//
// Apply is the hot path of every replica. A batch's transaction goes
// through a write-back cache (txcache.go): each key is read from the store
// at most once and written once, at the end, and the counters, users and
// dedup client records stay cached across batches (State is its store's
// only writer). The values read and written on every request have
// hand-written msgpack codecs (codec.go) producing Marshal's exact bytes.
package chat
