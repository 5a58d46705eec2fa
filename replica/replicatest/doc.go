// Package replicatest is a seeded, deterministic simulator for the replica
// core, in the shape of TigerBeetle's VOPR and etcd's rafttest: a Cluster of
// Nodes, each with an eventlog.MemoryLog as its disk, a simulated Network,
// clients that propose and retry, and a fault injector (crashes, restarts,
// pauses, broken connections, and optionally partitions), all driven from one
// goroutine in virtual time. Checkers run after every step; any failure
// replays from its seed.
//
// Test-only: production code never imports it.
package replicatest
