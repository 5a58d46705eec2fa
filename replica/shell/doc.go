// Package shell runs a replica: it drives the deterministic replication core
// (replica.Node) with the real event log, the peer transport, a ticker and
// the application's state machine. It is the only part of replication with
// goroutines and a clock.
//
// # The loop
//
// One goroutine owns the Node. It waits for an input (a tick, a message from
// a peer, a client proposal), feeds it and every other input already waiting
// (so that proposals arriving during one fsync share the next: group commit),
// then carries out the Node's Ready in the order the core's contract demands:
// send the early messages (the primary's Appends, so that the backups write
// while this replica does), persist (hard state, truncation, ISR index,
// records, epochs, rollback discards; every write synced), then send the
// rest, then hand what is committed to the applier, then Advance. A backup's
// acknowledgement is a lag sample stamped when it is stepped.
//
// # Proposals
//
// Propose hands records to the loop and waits until the record at the
// offset they were given is applied, checking it is the same request (client
// id and sequence): after a failover another record can take that offset, and
// the proposer must then hear "not primary" and retry, never a false success.
//
// # Time
//
// The ticker is the core's only clock. If the loop notices that it ran late
// by more than a tick (the process was stopped, the machine stalled, an fsync
// took long), it reports the gap with Node.Paused, so a replica that may
// have been declared dead meanwhile behaves as if it had restarted.
package shell
