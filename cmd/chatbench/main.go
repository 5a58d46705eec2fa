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
	"github.com/replichat/replichat/cmd/internal/buildinfo"
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
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "chatbench:", err)
		os.Exit(1)
	}
}

// errUsage marks a flag error that has been reported already.
var errUsage = errors.New("usage")

// errVersion ends a run that printed the version (--version).
var errVersion = errors.New("version printed")

// config is what the flags ask for.
type config struct {
	opts     bench.Options
	jsonPath string
	plotPath string
}

// parseFlags parses the command line: a problem is one line on stderr and
// errUsage; --help prints the usage on stdout (flag.ErrHelp), --version
// the version (errVersion).
func parseFlags(args []string, stdout, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("chatbench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	version := fs.Bool("version", false, "print the version and exit")
	fs.IntVar(&cfg.opts.Replicas, "replicas", 3, "cluster size: 1, 3 or 5")
	fs.IntVar(&cfg.opts.Clients, "clients", 16, "concurrent users, at least 2")
	fs.DurationVar(&cfg.opts.Duration, "duration", 10*time.Second, "length of the load phase (--quick: 3s; --long: 10m)")
	fs.BoolVar(&cfg.opts.Quick, "quick", false, "a short run, under a minute")
	fs.BoolVar(&cfg.opts.Long, "long", false, "a sustained-load run: 10 minutes of load (unless --duration), to see whether disk use is flat after warm-up (--plot, --json disk_bytes)")
	listeners := fs.Float64("listeners", 0.5, "fraction of users listening for pushes, 0 to 1 (0: nobody listens, the peers' workload)")
	fs.IntVar(&cfg.opts.Size, "size", 48, "message body in bytes (the peers use 200)")
	readEvery := fs.Int("read-every", 20, "sends between two reads of a non-listening user's queue (0: never, as the peers; queues then fill up in long runs)")
	fs.IntVar(&cfg.opts.Keep, "keep", 0, "each user deletes its oldest message copies (sent and received), 100 at a time, once it holds more than this many: the state then stays bounded, and with it the whole disk (0: nobody deletes; the state grows with every message)")
	idle := fs.Duration("idle", 5*time.Second, "how long the idle cluster's CPU is measured before the load (--quick: 3s; 0: not measured)")
	fs.Func("chatd-arg", "an extra flag for every chatd, one argument each, repeatable (e.g. --chatd-arg=--snapshot-every=10000)", func(v string) error {
		cfg.opts.ChatdArgs = append(cfg.opts.ChatdArgs, v)
		return nil
	})
	fs.StringVar(&cfg.jsonPath, "json", "", "write the figures as JSON to this file")
	fs.StringVar(&cfg.plotPath, "plot", "", "draw latency, lag and disk use over time to this PNG file")
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
			fmt.Fprintln(stdout, "usage: chatbench [--replicas 3] [--clients 16] [--duration 10s] [--quick | --long] [--json FILE] [--plot FILE.png] [flags]")
			fmt.Fprintln(stdout, "\nflags:")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return cfg, err
		}
		fmt.Fprintf(stderr, "chatbench: %v (see chatbench --help)\n", err)
		return cfg, errUsage
	}
	if *version {
		fmt.Fprintln(stdout, buildinfo.Version("chatbench"))
		return cfg, errVersion
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chatbench: unexpected argument %q (see chatbench --help)\n", fs.Arg(0))
		return cfg, errUsage
	}
	if cfg.opts.Size < 1 {
		// bench reads 0 as its default; here it is a mistake.
		fmt.Fprintf(stderr, "chatbench: --size must be at least 1 byte, not %d (see chatbench --help)\n", cfg.opts.Size)
		return cfg, errUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	// --quick and --long pick their duration unless --duration was given
	// too; --quick its idle time unless --idle was.
	if (cfg.opts.Quick || cfg.opts.Long) && !set["duration"] {
		cfg.opts.Duration = 0
	}
	switch {
	case !set["idle"]:
		cfg.opts.Idle = 0 // bench's default for the mode
	case *idle <= 0:
		cfg.opts.Idle = -1 // not measured
	default:
		cfg.opts.Idle = *idle
	}
	cfg.opts.Listeners = listeners
	cfg.opts.ReadEvery = *readEvery
	if *readEvery <= 0 {
		cfg.opts.ReadEvery = -1 // never
	}
	if cfg.opts.Chatd == "" {
		cfg.opts.Chatd = siblingChatd()
	}
	if !*quiet {
		// A line rewritten in place on a terminal, a line per phase
		// elsewhere: \r has no business in a log file.
		cfg.opts.Progress = bench.ProgressWriter(stderr)
	}
	if *verbose {
		cfg.opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg, nil
}

// run benchmarks a cluster as the flags say, prints the table on stdout and
// writes the JSON and plot files asked for.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stdout, stderr)
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
