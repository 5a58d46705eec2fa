// Command chatbench benchmarks a replichat cluster: it starts its own cluster
// of chatd processes on loopback, drives it with concurrent users, injects a
// failover, a catch-up and a restart, and prints the figures next to the
// project's goals.
//
//	chatbench [--replicas 3] [--clients 16] [--duration 10s] [--quick | --long] [--json FILE] [--plot FILE.png]
//	          [--listeners 0.5] [--size 48] [--read-every 20] [--keep N] [--idle 5s] [--chatd-arg=--flag=value ...]
//
// --listeners 0 --size 200 is the workload of ../shared/peers (nobody
// listens; --read-every 0 also drops the queue reads). --long is a
// sustained-load run of 10 minutes whose disk curve (--plot, disk_bytes in
// --json) shows whether disk use is flat after warm-up (dashed: without the
// state, which grows with the messages kept unless --keep N makes every
// user delete its oldest copies beyond N); --chatd-arg passes
// a flag to every chatd, e.g. --chatd-arg=--snapshot-every=10000.
//
// The harness itself is package bench; this command only parses flags and
// writes the outputs. main maps errors to an exit status; run does the
// wiring, so tests can drive it in-process.
package main
