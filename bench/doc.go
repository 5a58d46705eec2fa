// Package bench is the cluster benchmark harness behind chatbench: it starts a
// cluster of real chatd processes on loopback (package bench/cluster), drives it
// with concurrent client-library users and measures what the design promises.
//
// # What is measured
//
// Run goes through phases, in order, each bounded by a timeout:
//
//  1. fsync: this disk's write+fsync latency, probed in the run's directory
//     before the cluster starts, so every other figure reads as a ratio to it.
//  2. load: Options.Clients users send to each other for Options.Duration,
//     half of them listening (so pushes are part of the load), the others
//     reading their queue. It yields acknowledged sends per second, the send
//     latency (client send -> acknowledged) and the replication lag the
//     primary records per offset and backup (the metrics op).
//  3. failover (3 or more replicas): SIGKILL of the primary under load; the
//     time until the first send accepted by the new primary is acknowledged.
//     The old primary is then restarted and waited for until it is in sync.
//  4. catch-up (3 or more replicas): a backup is killed, Options.CatchupEvents
//     events are written, the backup is restarted, and its replay rate is
//     measured until the primary counts it in sync at the primary's log end.
//  5. restart: one replica holding the whole run's log is stopped cleanly and
//     started again; the time until it answers and is in sync (or, alone,
//     until it acknowledges a send).
//
// Peak resident memory (VmHWM) of every replica is read before each stop.
//
// # Figures
//
// Latencies and lags go into Histogram, a log-linear histogram of bounded
// memory that can be merged, instead of a sorted slice of every sample.
// Result holds the figures with the JSON keys of CONTRACT.md, and Targets
// compares them with the project's goals. WriteTable and WritePlot render them.
//
// With a single replica there is no replication: lag, failover and catch-up
// are absent (nil, null in JSON, "-" in the table), never zero.
package bench
