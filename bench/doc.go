// Package bench is the cluster benchmark harness behind chatbench: it starts a
// cluster of real chatd processes on loopback (package bench/cluster), drives it
// with concurrent client-library users and measures what the design promises.
//
// # What is measured
//
// Run goes through phases, in order, each bounded by a timeout:
//
//  1. fsync: this disk's write+fsync latency, probed in the run's directory
//     before the cluster starts. It is information (the goals once stated
//     as ratios to it are withdrawn), printed beside the figures.
//  2. idle (Options.Idle): every user connected and logged in, the listeners
//     listening, nobody sending; each replica's CPU over a few seconds, as a
//     percentage of one core.
//  3. load: Options.Clients users send Options.Size-byte messages to each
//     other for Options.Duration, the fraction Options.Listeners of them
//     listening (so pushes are part of the load; 0 is the peers' workload),
//     the others reading their queue every Options.ReadEvery sends; with
//     Options.Keep, every user also deletes its oldest message copies
//     once it holds more than Keep (so the state stays bounded). It
//     yields acknowledged sends per second, the send latency (client send
//     -> acknowledged), the replication lag the primary records per offset
//     and backup (the metrics op), and the CPU per acknowledged send of
//     every replica and of the harness.
//  4. failover (3 or more replicas): SIGKILL of the primary under load; the
//     time until the first send accepted by the new primary is acknowledged.
//     The old primary is then restarted and waited for until it is in sync.
//  5. catch-up (3 or more replicas): a backup is killed, Options.CatchupEvents
//     events are written, the backup is restarted, and its replay rate is
//     measured until the primary counts it in sync at the primary's log end.
//  6. restart: one replica holding the whole run's log is stopped cleanly and
//     started again; the time until it answers and is in sync (or, alone,
//     until it acknowledges a send).
//
// Peak resident memory (VmHWM) of every replica is read before each stop.
// Every replica's data directory is measured every second from the start of
// the load to the end of the run (file sizes and allocated space, and the
// state directory's share of it); with Options.Long, 10 minutes of load
// show whether disk use is flat after warm-up. Outside the state (the log,
// the snapshots) it should be whatever the users do, since compaction
// bounds it; the state holds every message kept, so the whole directory
// is flat only when users delete as much as they send (Options.Keep).
//
// CPU times come from /proc/PID/stat (utime + stime, in clock ticks of
// 10ms), read at the start and the end of the idle and load phases. A CPU
// profile (Options.ProfileDir) costs a few percent on top.
//
// # Figures
//
// Latencies and lags go into Histogram, a log-linear histogram of bounded
// memory that can be merged, instead of a sorted slice of every sample.
// Result holds the figures with the JSON keys of CONTRACT.md and extras, and
// Targets compares them with the project's goals (issue 10: CPU per
// acknowledged send, idle CPU, catch-up, failover, restart). WriteTable and
// WritePlot render them.
//
// With a single replica there is no replication: lag, failover and catch-up
// are absent (nil, null in JSON, "-" in the table), never zero.
package bench
