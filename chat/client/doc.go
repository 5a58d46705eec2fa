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
// primary (ErrFailoverTimeout).
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
// once.
package client
