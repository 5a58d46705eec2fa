// Command chatd is one replica of a replichat cluster.
//
//	chatd --id 0 --data ./data/0 --peers 0=127.0.0.1:7100,1=127.0.0.1:7101,2=127.0.0.1:7102
//
// main only maps errors to an exit status; run does the wiring, so tests can
// drive it in-process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp), errors.Is(err, errVersion):
		os.Exit(0)
	case errors.Is(err, errUsage):
		// parseFlags printed the problem already.
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "chatd:", err)
		os.Exit(1)
	}
}

// errUsage marks a flag error that has been reported already.
var errUsage = errors.New("usage")

// errVersion ends a run that printed the version (--version).
var errVersion = errors.New("version printed")

// run starts the replica and blocks until ctx is done (a clean shutdown) or
// it fails.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stdout, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stderr)
}
