package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/replichat/replichat/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "chatbench:", err)
		os.Exit(1)
	}
}

// errUsage marks a flag error that has been reported already.
var errUsage = errors.New("usage")

// config is what the flags ask for.
type config struct {
	opts     bench.Options
	jsonPath string
	plotPath string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("chatbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.opts.Replicas, "replicas", 3, "cluster size: 1, 3 or 5")
	fs.IntVar(&cfg.opts.Clients, "clients", 16, "concurrent users, at least 2")
	fs.DurationVar(&cfg.opts.Duration, "duration", 10*time.Second, "length of the load phase (--quick: 3s)")
	fs.BoolVar(&cfg.opts.Quick, "quick", false, "a short run, under a minute")
	fs.StringVar(&cfg.jsonPath, "json", "", "write the figures as JSON to this file")
	fs.StringVar(&cfg.plotPath, "plot", "", "draw lag and latency over time to this PNG file")
	fs.StringVar(&cfg.opts.Chatd, "chatd", "", "chatd binary to run (default: the chatd next to this binary, else build the module in the current directory)")
	fs.StringVar(&cfg.opts.Dir, "dir", "", "directory for the cluster's data and logs, kept afterwards (default: a temporary one, removed)")
	fs.IntVar(&cfg.opts.CatchupEvents, "catchup-events", 0, "events written while a backup is down (default 20000; --quick: 3000)")
	fs.IntVar(&cfg.opts.FsyncSamples, "fsync-samples", 0, "write+fsync probes of the disk (default 500; --quick: 100)")
	fs.DurationVar(&cfg.opts.PhaseTimeout, "phase-timeout", 60*time.Second, "a phase taking longer than planned by this much fails")
	fs.StringVar(&cfg.opts.ProfileDir, "profile", "", "write CPU profiles of every replica to this directory: load-<id>.pprof over the load phase, catchup-<id>.pprof over catch-up")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	verbose := fs.Bool("v", false, "log phases and client failovers on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chatbench: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return cfg, errUsage
	}
	// --quick picks the short duration unless --duration was given too.
	durationSet := false
	fs.Visit(func(f *flag.Flag) { durationSet = durationSet || f.Name == "duration" })
	if cfg.opts.Quick && !durationSet {
		cfg.opts.Duration = 0
	}
	if cfg.opts.Chatd == "" {
		cfg.opts.Chatd = siblingChatd()
	}
	if !*quiet {
		cfg.opts.Progress = stderr
	}
	if *verbose {
		cfg.opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg, nil
}

// run benchmarks a cluster as the flags say, prints the table on stdout and
// writes the JSON and plot files asked for.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	res, err := bench.Run(ctx, cfg.opts)
	if err != nil {
		return err
	}
	if err := bench.WriteTable(stdout, res); err != nil {
		return fmt.Errorf("print table: %w", err)
	}
	if cfg.jsonPath != "" {
		if err := bench.WriteJSON(cfg.jsonPath, res); err != nil {
			return err
		}
	}
	if cfg.plotPath != "" {
		if err := bench.WritePlot(cfg.plotPath, res); err != nil {
			return err
		}
	}
	return nil
}

// siblingChatd returns the chatd built next to this binary (make build puts
// both in bin/), so that a run measures that build without compiling again;
// "" if there is none.
func siblingChatd() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	path := filepath.Join(filepath.Dir(exe), "chatd")
	if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		return ""
	}
	return path
}
