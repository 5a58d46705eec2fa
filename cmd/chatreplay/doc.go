// Command chatreplay prints the history held in a replica's data directory,
// offline.
//
//	chatreplay --data DIR [--from OFFSET] [--to OFFSET] [--type TYPE] [--user NAME] [--json] [--state] [--mem]
//
// # Reading
//
// --data takes a replica's data directory, whose event log is in DIR/log
// (chatd keeps its chat state in DIR/state, which chatreplay does not read:
// it rebuilds the state from the log). A bare log directory, one Badger
// database directly in DIR as replicas wrote before the state moved out of
// the log's database, is read as is.
//
// It opens the event log read-only and streams it in offset order, in
// batches of at most readBatchBytes, one line per event:
//
//	OFFSET  EPOCH  TIME  TYPE  key=value ...
//
// or, with --json, one object per line whose first keys are always offset,
// epoch, type and time (RFC 3339 with nanoseconds, UTC; "-" and null for
// the replica layer's records, which carry no time), then client and
// seq when the record came from a client request (and resubmitted for a
// re-submission, see Folding), then the event's fields in snake_case. Chat
// events are decoded with chat.DecodeEvent; a
// register's password hash is printed as "<redacted>", never itself.
// Records of other types (the replica layer's "replica.*") are decoded as
// generic msgpack and printed under "data" with sorted keys (their own
// field names, such as "epoch", would otherwise collide with the record's);
// a payload that is not msgpack is printed as "data_base64". Nothing depends
// on the local time zone or on map iteration order, so two replicas holding
// the same records print the same bytes.
//
// A running replica holds its directory locked: chatreplay then says so and
// exits 1 rather than read a view that changes under it (stop the replica,
// or copy the directory and replay the copy). Badger cannot open read-only
// a directory whose writer crashed; eventlog.OpenBadger then recovers it
// with a brief read-write open first, as the replica itself would at its
// next start. A record that fails its checksum ends the output: everything
// before it is printed, then the error naming its offset, and the exit
// status is 1. So does a chat event that does not decode (the server could
// not have applied it either).
//
// # Folding
//
// Chat events name users by id. To print names, results and the state,
// chatreplay folds every record from offset 1 through chat.State.Apply,
// the server's own path, into a scratch state, even when --from is later;
// only the events within [--from, --to] are printed. The scratch state is
// kept in a temporary Badger directory (removed at exit), so memory does
// not grow with the log; --mem keeps it in memory instead, which is faster
// for small logs. A chat event from a client also gets a "result", taken
// from what applying it did (chat.State.ApplyWithResults), never from a
// later lookup of the dedup table, which may have evicted the result: "ok",
// the error code that applying it recorded (with "error", its message),
// "duplicate" when the dedup table skipped it (a retried request that had
// already been applied), "expired_request" when it was skipped unapplied (a
// live request below its client's dedup window, where the table no longer
// knows what was applied), or "skipped" (a client id too long to
// deduplicate). A send stored under another id than its event's (that one
// was taken) gets "stored_id".
//
// A record re-submitted after a fork (a replica truncated it and sent it to
// the primary again) carries "resubmitted": {"epoch": E, "offset": O}, where
// its truncated copy was, after client and seq (in the human format, as
// resubmitted={"epoch":E,"offset":O}). Its result says whether it was
// applied, dropped as a duplicate or rejected; "dedup" is "unknown" when it
// was applied where the dedup table could not vouch that it had not been
// before (a possible duplicate), and "message_id" when it was dropped as a
// duplicate by its message id there.
//
// # Compacted logs
//
// A replica compacts its log behind the snapshots of its chat state that
// it keeps in DIR/snapshots (chatd --snapshot-every). On such a directory
// chatreplay prints from the first retained offset, and says on stderr
// (never on stdout: --json stays one event object per line) where the log
// starts and which snapshot holds the state before it. The fold then starts
// from a snapshot the log continues (at or after the first retained offset
// minus one): loaded (its SHA-256 checked), then the records after it
// applied. Events up to the snapshot's offset are printed without names or
// results (the state before them is gone); those after it with them,
// exactly as a replay from offset 1 would print them. --user prints the
// events after the snapshot, attributed by the accounts it holds.
//
// --state --to N works for any N from the earliest such snapshot on (the
// newest snapshot at or before N, and the records after it up to N), and
// gives the digest a replay from offset 1 of the whole log would; before
// that snapshot it is an error that says from which offset the state is
// known. A compacted log with no snapshot it continues (a bare log
// directory, or one whose snapshots were removed) is printed without names
// or results, with a warning, and --user and --state are refused.
//
// # Filters
//
// --type takes a record type ("chat.send", "replica.epoch") or a chat
// event's short name ("send", "delete-messages"), or several separated by
// commas. --user NAME selects the events that involve an account named
// NAME: its registration, the messages it sent or received, its
// deliveries, its deletions. Matching is by account id, and every account
// that ever had the name matches: an account deleted and then registered
// again under the same name matches under both ids, which every printed
// event shows (uid, from_uid, to_uid) so that the two can be told apart.
//
// # State
//
// --state folds the log up to --to (default: its end) and prints the chat
// state instead of the events: per live account, in name order, its uid,
// queued (unread) messages, delivered messages (received messages still in
// its history that were read or acknowledged) and history size; then a
// summary with the offset applied, the number of accounts and
// chat.State.Digest in hex, which equals the replica's own digest at that
// offset. With --user, only that account is listed (the summary still
// covers the whole state).
//
// # Exit status
//
// 0 on success, 1 on an error (one line on stderr), 2 on a usage error
// (one line too, with a hint to --help; --help prints the usage on
// stdout). --state --to beyond the log's end is an error, not the state at
// the end. --version prints one line: the module version, VCS revision and
// Go version.
package main
