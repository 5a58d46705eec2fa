// Command chatbench benchmarks a replichat cluster: it starts its own cluster
// of chatd processes on loopback, drives it with concurrent users, injects a
// failover, a catch-up and a restart, and prints the figures next to the
// project's goals.
//
//	chatbench [--replicas 3] [--clients 16] [--duration 10s] [--quick] [--json FILE] [--plot FILE.png]
//
// The harness itself is package bench; this command only parses flags and
// writes the outputs. main maps errors to an exit status; run does the
// wiring, so tests can drive it in-process.
package main
