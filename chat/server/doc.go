// Package server is the chat service's TCP front end: it accepts client
// connections, speaks the chat/wire protocol, turns requests into chat
// commands, has them made durable by a Replicator, and pushes new messages to
// users who are listening.
//
// # Request path
//
// A read-only request (login, users, history, status) is answered from the
// local chat.State. A mutating request (register, send, read, ack,
// delete_messages, delete_account) goes:
//
//  1. the dedup table: if (client id, seq) already has a result, that result
//     is the answer (a retry after a failover gets the original outcome).
//     The lookup is skipped when the seq is above every seq of that client
//     applied so far (seqTracker), as nearly every request's is;
//  2. chat.Decide validates it against the current state and does the
//     non-deterministic work (password hash, message id, time);
//  3. Replicator.Propose makes the event durable on every in-sync replica and
//     applies it;
//  4. the answer is the result that applying stored in the dedup table,
//     because applying is the authority: an event that became invalid
//     between deciding and applying (say, a concurrent register of the same
//     name) records its error there. The state machine hands it over as it
//     applies (resultWaiters); it is read back from the table only when the
//     record was applied as a duplicate.
//
// # Push delivery
//
// Pushes never come from the request path. A listening session owns a pusher
// goroutine that reads the user's durable unread queue in log order and
// pushes what it has not pushed yet; applying a send to a listening user
// wakes it. A message leaves the queue only when the client acknowledges it
// (or reads it), so a push lost with a connection is pushed again on the next
// listen. Presence (who is listening) is local to this server and dies with
// the connection.
//
// # Snapshots and deletes
//
// The StateMachine is the replication shell's Snapshotter: its snapshots
// are the chat state's, consistent at the offset they report, written
// while applying goes on; an install replaces the state and resets what
// the server keeps beside it (snapshot.go). It also makes deleted data gone
// from the disk once the log is compacted past it (purge.go), within the
// bound the README states.
//
// # Connections
//
// One TCP port serves clients and replica peers. The first bytes decide: the
// replica transport's magic preamble hands the connection to the peer
// handler; anything else is a chat/wire client, which must start with a hello.
// Requests on one connection are handled in order; concurrency comes from many
// connections, whose proposals share group commits.
package server
