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
//     malformed_test.go, chatd_test.go, replay_test.go.
//
// Tests synchronize by polling with deadlines, never by fixed sleeps, and
// run in parallel where they are independent. Run them with
//
//	go test ./cmd/e2e/
//
// A failing test keeps the replica logs in its temporary directory and
// prints their tails.
package e2e
