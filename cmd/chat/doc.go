// Command chat is the replichat client: scriptable subcommands, and an
// interactive session when run without one.
//
//	chat [--servers host:port,...] [--user NAME] [--json] [--password-file F] COMMAND [ARGS]
//
// The contract it keeps (flags, commands, JSON objects, exit codes) is
// CONTRACT.md's "chat" section; "chat help" prints the commands. Exit
// status: 0 on success, 1 on an error, 2 on a usage error. With --json,
// results are JSON Lines on stdout and an error is one
// {"error":{"code":...,"message":...}} object on stdout; without it,
// errors go to stderr.
//
// main only maps run's error to the exit status; run does everything else,
// so that the tests drive it with buffers for stdin, stdout and stderr.
package main
