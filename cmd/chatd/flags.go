package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/replichat/replichat/cmd/internal/buildinfo"
	"github.com/replichat/replichat/replica/shell"
)

// config is chatd's parsed command line.
type config struct {
	id          uint32
	dataDir     string
	listen      string
	peers       map[uint32]string // id -> host:port, this replica included
	secretFile  string
	logLevel    slog.Level
	logJSON     bool
	maxConns    int
	tlsCert     string
	tlsKey      string
	heartbeat   time.Duration
	failover    time.Duration
	argonMemKiB uint
	argonTime   uint
	forceLead   bool
	debugAddr   string
	// metricsAddr serves /metrics, /healthz and /readyz (metrics.go); ""
	// when off.
	metricsAddr string
	// memLimitMiB is the Go runtime's soft memory limit; 0 leaves the
	// runtime's own (GOMEMLIMIT, else none).
	memLimitMiB int64
	// gcPercent is the Go runtime's GC target percentage; 0 leaves the
	// runtime's own (GOGC, else 100).
	gcPercent int
	// diskReserveMiB is the free space below which the replica takes no
	// writes (disk.go); 0 disables the guard.
	diskReserveMiB int64
	// repair moves a data directory that fails its start-up checks aside
	// and starts empty, as a new member that fetches everything (repair.go).
	repair bool
	// snapshotEvery, retainEvents and forkRetain bound the log (see the
	// defaults below and shell.Config): a snapshot every snapshotEvery
	// applied events (0: none, and no compaction), the log compacted
	// retainEvents behind the latest one, and past a replica that is down
	// once its records are forkRetain behind.
	snapshotEvery, retainEvents, forkRetain uint64
	// snapshotCPU is the share of one core that writing a snapshot may
	// take (shell.Config.SnapshotShare): applying, and so the primary's
	// throughput, keeps the rest.
	snapshotCPU float64
}

// Defaults of the snapshot flags, and why. Measured on the development
// machine (README, "Snapshots and compaction"): the log takes about 135
// bytes per event on disk (64-byte messages), the state 240 bytes per
// message, a snapshot 182 (S2-compressed); writing the snapshot of a state
// of 1M messages takes 2.9 s of one core.
//   - defaultSnapshotEvery: the log holds at most snapshotEvery +
//     retainEvents events, 200k, about 27 MB; a snapshot copies the whole
//     state, so a smaller log costs more often that copy (for 1M
//     messages, 3 s of CPU and 182 MB written every 100k events, which is
//     30-60 s of a saturated primary here);
//   - defaultRetainEvents: a backup restarted within 100k events catches up
//     by offset, cheaply (100k events in about 0.6 s), rather than by a
//     snapshot install (10 s to restore 1M messages);
//   - defaultForkRetain: while a replica is down (or cut off), compaction
//     goes on once what it lacks is 1M events behind, so the log stays
//     below about 1.1M events (150 MB); a fork deeper than that on one side
//     (a partition under full load for minutes) stops the replica for
//     --repair rather than compact what it would re-submit.
//
// The disk of a replica is then its state, the log, and the snapshots: one
// (two while one is written), up to three while a replica is down.
const (
	defaultSnapshotEvery = 100_000
	defaultRetainEvents  = 100_000
	defaultForkRetain    = 1_000_000
)

// maxEventsFlag bounds the event counts of the snapshot flags: offsets
// must not overflow when added to them.
const maxEventsFlag = 1 << 48

// parseFlags parses chatd's command line. A problem is one line on stderr
// (with a hint to --help, not the whole usage) and errUsage; --help prints
// the usage on stdout and returns flag.ErrHelp; --version prints the
// version on stdout and returns errVersion.
func parseFlags(args []string, stdout, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("chatd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		cfg     config
		version = fs.Bool("version", false, "print the version and exit")
		id      = fs.Uint("id", 0, "this replica's id (its entry in --peers)")
		peers   = fs.String("peers", "", "every replica of the cluster as id=host:port,... (empty: a one-replica cluster on --listen)")
		level   = fs.String("log-level", "info", "log level: debug, info, warn or error")
		logFmt  = fs.String("log-format", "text", "log format: text or json")
	)
	fs.StringVar(&cfg.dataDir, "data", "", "this replica's data directory (created if missing; never shared between replicas)")
	fs.StringVar(&cfg.listen, "listen", "", "address to listen on (default: this replica's --peers entry, or 127.0.0.1:7100)")
	fs.StringVar(&cfg.secretFile, "secret-file", "", "file holding the cluster secret that replicas authenticate each other with (default: cluster.secret next to --data; created on first start)")
	fs.IntVar(&cfg.maxConns, "max-conns", 1024, "most concurrent client connections")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "PEM certificate: accept TLS client connections (on the same port)")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "PEM private key for --tls-cert")
	fs.DurationVar(&cfg.heartbeat, "heartbeat", 50*time.Millisecond, "interval of the primary's heartbeats to backups")
	fs.DurationVar(&cfg.failover, "failover-timeout", 400*time.Millisecond, "silence after which a replica is presumed crashed")
	fs.UintVar(&cfg.argonMemKiB, "argon-memory", 19*1024, "argon2id memory per password hash, KiB")
	fs.UintVar(&cfg.argonTime, "argon-time", 2, "argon2id passes per password hash")
	fs.BoolVar(&cfg.forceLead, "force-lead", false, "operator override: take over as primary even though the replicas of the last in-sync set have not all been heard from (may lose what only they held; logged)")
	fs.StringVar(&cfg.debugAddr, "debug-addr", "", "serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060); off by default")
	fs.StringVar(&cfg.metricsAddr, "metrics-addr", "", "serve Prometheus metrics (/metrics), /healthz and /readyz over HTTP on this address (e.g. 127.0.0.1:9100); off by default")
	fs.Int64Var(&cfg.memLimitMiB, "memory-limit", 384, "soft limit of the Go runtime's memory, MiB: the GC collects more often near it (0: GOMEMLIMIT, else none)")
	fs.IntVar(&cfg.gcPercent, "gc-percent", 0, "GC target: heap growth over the live heap before a collection, percent (0: GOGC, else 100; -1: collect only near --memory-limit)")
	fs.Int64Var(&cfg.diskReserveMiB, "disk-reserve", 256, "free space to keep on the data directory's filesystem, MiB: below it the replica takes no writes until there is room again (0: no guard)")
	fs.Uint64Var(&cfg.snapshotEvery, "snapshot-every", defaultSnapshotEvery, "snapshot the chat state after this many events applied since the last snapshot, and compact the log behind it (0: no snapshots, no compaction: the log grows without bound)")
	fs.Uint64Var(&cfg.retainEvents, "retain-events", defaultRetainEvents, "events the log keeps behind the latest snapshot, so that a backup that lags less catches up by offset instead of installing a snapshot")
	fs.Float64Var(&cfg.snapshotCPU, "snapshot-cpu", shell.DefaultSnapshotShare, "share of one core that writing a snapshot may take, above 0 and at most 1 (1: unpaced); service keeps the rest")
	fs.Uint64Var(&cfg.forkRetain, "fork-retain", defaultForkRetain, "compact past a replica that is down or cut off once its missing events are this far behind (0: never; the log then grows until it is back); a fork deeper than this stops this replica for --repair")
	fs.BoolVar(&cfg.repair, "repair", false, "if the data directory fails its start-up checks (a damaged or lost log), move it aside and start empty as a new member that fetches everything from the cluster")
	usage := func(format string, a ...any) (config, error) {
		fmt.Fprintf(stderr, "chatd: "+format+" (see chatd --help)\n", a...)
		return cfg, errUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "usage: chatd --id N --data DIR [--peers 0=host:port,1=host:port,...] [flags]\n\nflags:\n")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return cfg, err
		}
		return usage("%v", err)
	}
	if *version {
		fmt.Fprintln(stdout, buildinfo.Version("chatd"))
		return cfg, errVersion
	}
	if fs.NArg() > 0 {
		return usage("unexpected argument %q", fs.Arg(0))
	}
	if cfg.dataDir == "" {
		return usage("--data is required")
	}
	if *id > 1<<31 {
		return usage("--id %d is out of range", *id)
	}
	cfg.id = uint32(*id)
	if err := cfg.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return usage("--log-level %q: want debug, info, warn or error", *level)
	}
	switch *logFmt {
	case "text":
	case "json":
		cfg.logJSON = true
	default:
		return usage("--log-format %q: want text or json", *logFmt)
	}
	if cfg.metricsAddr != "" {
		if _, _, err := net.SplitHostPort(cfg.metricsAddr); err != nil {
			return usage("--metrics-addr %q: want host:port (%v)", cfg.metricsAddr, err)
		}
	}
	if (cfg.tlsCert == "") != (cfg.tlsKey == "") {
		return usage("--tls-cert and --tls-key go together")
	}
	if cfg.heartbeat <= 0 || cfg.failover < 4*cfg.heartbeat {
		return usage("--failover-timeout (%s) must be at least 4 times --heartbeat (%s)", cfg.failover, cfg.heartbeat)
	}
	if cfg.argonMemKiB < 8 || cfg.argonTime < 1 {
		return usage("--argon-memory must be at least 8 KiB and --argon-time at least 1")
	}
	if cfg.memLimitMiB < 0 || cfg.memLimitMiB > math.MaxInt64>>20 {
		return usage("--memory-limit %d is out of range", cfg.memLimitMiB)
	}
	if cfg.diskReserveMiB < 0 || cfg.diskReserveMiB > math.MaxInt64>>20 {
		return usage("--disk-reserve %d is out of range", cfg.diskReserveMiB)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.snapshotEvery == 0 {
		for _, name := range []string{"retain-events", "fork-retain"} {
			if set[name] {
				return usage("--%s has no effect with --snapshot-every 0 (no snapshots: the log is never compacted)", name)
			}
		}
	}
	for _, f := range []struct {
		name string
		v    uint64
	}{{"snapshot-every", cfg.snapshotEvery}, {"retain-events", cfg.retainEvents}, {"fork-retain", cfg.forkRetain}} {
		if f.v > maxEventsFlag {
			return usage("--%s %d is out of range (at most %d)", f.name, f.v, uint64(maxEventsFlag))
		}
	}
	if !(cfg.snapshotCPU > 0 && cfg.snapshotCPU <= 1) {
		return usage("--snapshot-cpu %v: want a share of one core above 0 and at most 1", cfg.snapshotCPU)
	}
	if cfg.gcPercent < -1 {
		return usage("--gc-percent %d: want -1 (off), 0 (runtime default) or a positive percentage", cfg.gcPercent)
	}
	if cfg.gcPercent == -1 && cfg.memLimitMiB == 0 {
		// Without a limit the heap would grow until the kernel kills us.
		return usage("--gc-percent -1 needs a --memory-limit")
	}
	if *peers == "" {
		if cfg.listen == "" {
			cfg.listen = "127.0.0.1:7100"
		}
		cfg.peers = map[uint32]string{cfg.id: cfg.listen}
	} else {
		p, err := parsePeers(*peers)
		if err != nil {
			return usage("--peers: %v", err)
		}
		own, ok := p[cfg.id]
		if !ok {
			return usage("--peers has no entry for --id %d", cfg.id)
		}
		cfg.peers = p
		if cfg.listen == "" {
			cfg.listen = own
		}
	}
	if cfg.secretFile == "" {
		cfg.secretFile = filepath.Join(filepath.Dir(filepath.Clean(cfg.dataDir)), "cluster.secret")
	}
	return cfg, nil
}

// parsePeers parses "0=host:port,1=host:port".
func parsePeers(s string) (map[uint32]string, error) {
	out := make(map[uint32]string)
	var addrs []string
	for _, part := range strings.Split(s, ",") {
		idStr, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("entry %q is not id=host:port", part)
		}
		id, err := strconv.ParseUint(idStr, 10, 31)
		if err != nil {
			return nil, fmt.Errorf("entry %q: id %q is not a small non-negative number", part, idStr)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("entry %q: %v", part, err)
		}
		if _, dup := out[uint32(id)]; dup {
			return nil, fmt.Errorf("id %d appears twice", id)
		}
		if slices.Contains(addrs, addr) {
			return nil, fmt.Errorf("address %s appears twice", addr)
		}
		addrs = append(addrs, addr)
		out[uint32(id)] = addr
	}
	return out, nil
}
