// Package clienttest provides a fake replichat cluster for the tests of the
// client library and of the chat CLI: replicas that speak the wire protocol
// on 127.0.0.1, share one in-memory chat state, let a test choose which one
// is primary, stop them, cut connections, and inject faults into chosen
// requests, and record every request received so that a test can check
// sequence numbers.
//
// It implements the protocol's observable behaviour (docs/wire.md), not the
// real server: there is no replication, no password hashing and no limits
// beyond the ones a client test needs. Production code never imports it.
package clienttest
