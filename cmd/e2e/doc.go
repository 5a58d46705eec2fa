// Package e2e holds the end-to-end tests of replichat: they build the real
// binaries (chatd, chat, chatreplay) once, run chatd processes on loopback
// through bench/cluster, drive them with the chat CLI and the client
// library, crash them with SIGKILL, and check the guarantees of DESIGN.md
// (section 7: no acknowledged send lost, no duplicates, no phantoms,
// per-sender order, deterministic replay) and the behaviour CONTRACT.md
// promises, from the outside only.
//
// The package has no code of its own: everything is in _test.go files.
//
// # Layout
//
//   - main_test.go: TestMain builds the binaries into a temporary directory.
//   - harness_test.go: starting clusters, finding the primary, running CLI
//     commands, polling, client-library senders and the checks on their
//     results (checkSends, checkReplayedSends), replaying data directories
//     and comparing replicas (checkReplicasAgree). Everything there takes a
//     cluster of any size or a replica id, so three-replica scenarios (kill
//     orders, restart sequences) reuse it.
//   - checks_test.go: the checks themselves report each kind of violation.
//   - one file per scenario: cli_test.go, crash_test.go,
//     malformed_test.go, chatd_test.go, replay_test.go, replicated_test.go
//     (kill orders and restart sequences).
//   - chaos_test.go: the fault-injection scenarios of DESIGN.md section 8
//     under a load of at least 12 clients sending as fast as acks come
//     back: partitions made with a TCP proxy between the replicas
//     (bench/netfault; --peers names the proxy, --listen the real port),
//     links cut and restored again and again, mixed with SIGKILL and
//     SIGSTOP; a replaced disk with the others crashed while it catches
//     up; a primary stopped with requests queued on it.
//     chaos_harness_test.go runs the load and the faults, and
//     chaos_report_test.go checks the outcome of every request: every
//     acknowledged send present exactly once under its acknowledged id,
//     no send that got a definite error present, identical logs;
//     chaos_checks_test.go shows those checks catch what they claim to.
//     REPLICHAT_CHAOS_SEED replays a run's random choices.
//   - snapshot_test.go: snapshots every 200 events; a backup down through
//     thousands of sends (kept, or wiped) installs a snapshot and rejoins
//     with nothing lost or doubled and the states equal; deleted messages
//     and a deleted account are gone from every byte of every file of the
//     three data directories once compaction has passed them, while a
//     message not deleted is found there (the positive control).
//
// Tests synchronize by polling with deadlines, never by fixed sleeps, and
// run in parallel where they are independent. Run them with
//
//	go test ./cmd/e2e/
//
// A failing test keeps the replica logs in its temporary directory and
// prints their tails.
package e2e
