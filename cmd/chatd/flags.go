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
	// memLimitMiB is the Go runtime's soft memory limit; 0 leaves the
	// runtime's own (GOMEMLIMIT, else none).
	memLimitMiB int64
	// gcPercent is the Go runtime's GC target percentage; 0 leaves the
	// runtime's own (GOGC, else 100).
	gcPercent int
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("chatd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg    config
		id     = fs.Uint("id", 0, "this replica's id (its entry in --peers)")
		peers  = fs.String("peers", "", "every replica of the cluster as id=host:port,... (empty: a one-replica cluster on --listen)")
		level  = fs.String("log-level", "info", "log level: debug, info, warn or error")
		logFmt = fs.String("log-format", "text", "log format: text or json")
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
	fs.Int64Var(&cfg.memLimitMiB, "memory-limit", 384, "soft limit of the Go runtime's memory, MiB: the GC collects more often near it (0: GOMEMLIMIT, else none)")
	fs.IntVar(&cfg.gcPercent, "gc-percent", 0, "GC target: heap growth over the live heap before a collection, percent (0: GOGC, else 100; -1: collect only near --memory-limit)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: chatd --id N --data DIR [--peers 0=host:port,1=host:port,...] [flags]\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, errUsage
	}
	usage := func(format string, a ...any) (config, error) {
		fmt.Fprintf(stderr, "chatd: "+format+"\n", a...)
		fs.Usage()
		return cfg, errUsage
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
