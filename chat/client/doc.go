// Package client is the Go client of a replichat cluster: it finds the
// primary, speaks the wire protocol (package chat/wire) to it, and rides out
// failover so that callers see one reliable chat service.
//
// It is used by the chat CLI, by the end-to-end tests and by the benchmark
// harness.
//
// # Finding the primary
//
// New prepares a Client without connecting; Dial also connects. A Client
// tries Config.Servers in order (a not_primary hint first, when it has one),
// says hello, and keeps the first replica that answers as primary. A backup's
// hello names the primary it believes in, and that address is tried next.
//
// # Failover and exactly-once
//
// Every mutating request (wire.Mutating) takes the next sequence number once.
// When a request fails because the connection broke, no answer came within
// Config.RequestTimeout, or the server answered with a retryable code
// (wire.Code.Retryable), the Client closes the connection, finds the primary
// again with a jittered backoff (50ms doubling up to 1s), says hello with the
// same ClientID, logs in again with the credentials of the last successful
// Login, and resends the request with the same sequence number. The server's
// deduplication table then answers a request that was already applied with
// its original result, so that a send is applied once across any number of
// failovers. The Client gives up after Config.FailoverTimeout without a
// primary (ErrFailoverTimeout), with an *UnavailableError that says why in
// the replicas' own words: it asks every replica for its status (Status)
// and reports each one's reason, "waiting to hear from replica 2" or
// "down (connection refused)", rather than the last connection's error.
//
// Any other failure the server reports is returned as an *Error, without
// retry.
//
// # Concurrency
//
// A Client is safe for concurrent use. Requests are pipelined on one
// connection; one reader goroutine per connection matches responses to
// requests by id and queues pushed messages for Listen. Close stops every
// goroutine the Client started.
//
// # Listening
//
// Listen subscribes to the user's messages, hands each one to a callback and
// only then acknowledges it, so a message counts as delivered once the
// callback has handled it. After a failover it subscribes again; the server
// then pushes the messages that were not acknowledged, and Listen drops those
// it already handed to the callback, so that the callback sees each message
// once. ListenWith with ListenConfig.Persist rides out an outage of any
// length instead of giving up at the failover timeout, and tells the caller
// when the cluster becomes unavailable (with the *UnavailableError) and
// when it is back, once each.
//
// # Status
//
// Status needs no primary: it asks every replica, including those that the
// answers name but Config.Servers does not list. Each replica that answers
// describes itself; one that does not is RoleDown with no numbers, since a
// peer's view of it (a backup's knows nothing of the others' logs) is no
// substitute.
package client
