// Command chat is the replichat client: scriptable subcommands, and an
// interactive session when run without one.
//
//	chat [--servers host:port,...] [--user NAME] [--json] [--password-file F] COMMAND [ARGS]
//
// The contract it keeps (flags, commands, JSON objects, exit codes) is
// docs/contract.md's "chat" section; "chat help" prints the commands.
// Global flags may come before or after the command; after "--" every
// argument is text. Exit status: 0 on success, 1 on an error, 2 on a usage
// error; status exits 1 when no primary serves and 3 when one serves but a
// replica is down or out of sync. With --json, results are JSON Lines on
// stdout and an error is one {"error":{"code":...,"message":...}} object
// on stdout; without it, errors go to stderr, one line each, said once
// (without the client library's operation prefixes) and naming what they
// are about.
//
// listen and the interactive session never give up on an outage: they say
// on stderr when the cluster becomes unavailable, with the replicas'
// reasons, and when it is back. The session reads lines with
// golang.org/x/term's line editor when stdin and stdout are a terminal
// (editing, history, the typed line redrawn after an incoming message),
// plain lines otherwise, and takes the CLI's commands.
//
// main only maps run's error to the exit status; run does everything else,
// so that the tests drive it with buffers for stdin, stdout and stderr.
package main
