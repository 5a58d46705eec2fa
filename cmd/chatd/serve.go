package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/chat/server"
	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
	"github.com/replichat/replichat/replica/shell"
	"github.com/replichat/replichat/replica/transport"
)

// tickInterval is the replication core's unit of time; heartbeat and
// failover timeouts are whole numbers of ticks.
const tickInterval = 10 * time.Millisecond

func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.logJSON {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h)
}

// The data directory holds two Badger databases:
//
//	<data>/log    the event log, every commit fsynced (eventlog.BadgerLog)
//	<data>/state  the chat state, commits not fsynced (chatdb.DB)
//
// They are separate so that applying committed records to the state does
// not pay an fsync per transaction, serialized after the log's own: the state
// is derived from the log and stores its applied offset with its changes,
// so a power loss may lose a suffix of the applied state (never of the log),
// which the shell replays from the log at the next start. See chatdb's doc.
const (
	logDir   = "log"
	stateDir = "state"
)

// openData opens the event log, then the chat state, in dataDir, creating
// them if needed. It refuses a data directory in the old layout (one Badger
// database directly in dataDir) rather than start an empty log next to it.
func openData(dataDir string, logger *slog.Logger) (*eventlog.BadgerLog, *chatdb.DB, error) {
	if _, err := os.Stat(filepath.Join(dataDir, "MANIFEST")); err == nil {
		// Moving the files into log/ is not enough: the old database also
		// holds the state, and a replica restored from a snapshot has no log
		// from offset 1 to rebuild it from.
		return nil, nil, fmt.Errorf("data directory %s has the old layout (one Badger database directly in it); "+
			"this chatd keeps %s and %s: start this replica on a new empty directory and let it catch up from the cluster",
			dataDir, filepath.Join(dataDir, logDir), filepath.Join(dataDir, stateDir))
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("create data directory: %w", err)
	}
	logPath := filepath.Join(dataDir, logDir)
	log, err := eventlog.OpenBadger(logPath, eventlog.BadgerOptions{Logger: logger.With("component", "badger")})
	if err != nil {
		return nil, nil, fmt.Errorf("open data directory %s: %w", dataDir, err)
	}
	stateDB, err := chatdb.Open(filepath.Join(dataDir, stateDir), chatdb.Options{Logger: logger.With("component", "badger")})
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("open data directory %s: %w", dataDir, err), log.Close())
	}
	return log, stateDB, nil
}

// syncedReset makes a state reset durable before the shell replays the log
// into it: the state database does not fsync its commits, and a reset rolled
// back by a power loss could leave applied records that the log no longer
// holds, which the shell's start-up check (applied beyond the log end) does
// not always catch.
type syncedReset struct {
	*server.StateMachine
	db *chatdb.DB
}

func (s *syncedReset) Reset() error {
	if err := s.StateMachine.Reset(); err != nil {
		return err
	}
	return s.db.Sync()
}

// serve opens the replica's data, starts replication and the server, and
// runs until ctx is done.
func serve(ctx context.Context, cfg config, stderr io.Writer) (err error) {
	// The replication core and the transport tag their records with the
	// node id themselves; everything else gets it here.
	base := newLogger(cfg, stderr)
	logger := base.With("node", cfg.id)
	defer applyMemorySettings(memorySettings{limitMiB: cfg.memLimitMiB, gcPercent: cfg.gcPercent})()
	logger.Debug("memory settings", "memory_limit_bytes", debug.SetMemoryLimit(-1), "gc_percent", cfg.gcPercent)
	log, stateDB, err := openData(cfg.dataDir, logger)
	if err != nil {
		return err
	}
	// Deferred in this order, the state closes first, after the server and
	// the shell (its only users) have stopped, then the log.
	defer func() {
		if cerr := log.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close event log: %w", cerr)
		}
	}()
	defer func() {
		if cerr := stateDB.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close chat state: %w", cerr)
		}
	}()
	state := chat.NewState(stateDB.Store())
	sm := &syncedReset{StateMachine: server.NewStateMachine(state), db: stateDB}
	if err := state.LoadErr(); errors.Is(err, chat.ErrIncompleteRestore) {
		// A reset of the state (after a fork) was interrupted: finish it; the
		// log is intact and replication replays it.
		logger.Warn("chat state reset was interrupted; resetting again and replaying the log")
		if err := sm.Reset(); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("check chat state in %s: %w", filepath.Join(cfg.dataDir, stateDir), err)
	}

	ids := make([]replica.NodeID, 0, len(cfg.peers))
	addrs := make(map[replica.NodeID]string, len(cfg.peers))
	for id, addr := range cfg.peers {
		ids = append(ids, replica.NodeID(id))
		addrs[replica.NodeID(id)] = addr
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })

	var tr shell.Transport = shell.NoTransport{}
	var peerTransport *transport.Transport
	if len(cfg.peers) > 1 {
		secret, created, err := transport.LoadOrCreateSecret(cfg.secretFile)
		if err != nil {
			return fmt.Errorf("cluster secret: %w", err)
		}
		if created {
			logger.Info("created the cluster secret; every replica of this cluster must use this file", "secret_file", cfg.secretFile)
		}
		tpeers := make(map[transport.NodeID]string, len(cfg.peers))
		for id, addr := range cfg.peers {
			tpeers[transport.NodeID(id)] = addr
		}
		peerTransport, err = transport.New(transport.Config{
			Self: transport.NodeID(cfg.id), Peers: tpeers, Secret: secret,
			Logger: base.With("component", "transport"),
		})
		if err != nil {
			return err
		}
		tr = peerTransport
	}
	var seed [8]byte
	rand.Read(seed[:])
	sh, err := shell.New(shell.Config{
		Node: replica.Config{
			ID:             replica.NodeID(cfg.id),
			Peers:          ids,
			HeartbeatTicks: max(1, int(cfg.heartbeat/tickInterval)),
			FailoverTicks:  max(4, int(cfg.failover/tickInterval)),
			Seed:           binary.LittleEndian.Uint64(seed[:]),
		},
		Log:          log,
		StateMachine: sm,
		Transport:    tr,
		Addrs:        addrs,
		TickInterval: tickInterval,
		Logger:       base.With("component", "replica"),
	})
	if err != nil {
		return err
	}

	var tlsCfg *tls.Config
	if cfg.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	afterCommit, err := afterCommitFailpoint(logger)
	if err != nil {
		return err
	}
	srvCfg := server.Config{
		AfterCommit: afterCommit,
		State:       state,
		Replicator:  &replicator{sh: sh},
		TLS:         tlsCfg,
		MaxConns:    cfg.maxConns,
		Argon:       chat.ArgonParams{Time: uint32(cfg.argonTime), MemoryKiB: uint32(cfg.argonMemKiB), Threads: 1},
		Logger:      logger.With("component", "server"),
	}
	if peerTransport != nil {
		srvCfg.Peer = peerTransport.Accept
	}
	srv, err := server.New(srvCfg)
	if err != nil {
		return err
	}
	sm.SetServer(srv)

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	logger.Info("serving", "addr", ln.Addr().String(), "data", cfg.dataDir, "replicas", len(cfg.peers))
	g, gctx := errgroup.WithContext(ctx)
	if cfg.debugAddr != "" {
		dbg, err := debugServer(gctx, cfg.debugAddr, logger)
		if err != nil {
			return err
		}
		g.Go(dbg)
	}
	if peerTransport != nil {
		g.Go(func() error { return peerTransport.Run(gctx) })
	}
	g.Go(func() error {
		err := sh.Run(gctx)
		if err != nil {
			err = fmt.Errorf("replication stopped: %w", err)
		}
		return err
	})
	g.Go(func() error { return srv.Serve(gctx, ln) })
	if cfg.forceLead {
		g.Go(func() error {
			logger.Warn("operator forced this replica to lead (--force-lead): records only the missing replicas held may be lost")
			if err := sh.ForceLead(gctx); err != nil && gctx.Err() == nil {
				return fmt.Errorf("force lead: %w", err)
			}
			return nil
		})
	}
	err = g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		logger.Info("shut down cleanly")
		return nil
	}
	return err
}

// replicator adapts the replication shell to the chat server.
type replicator struct {
	sh *shell.Shell
}

func (r *replicator) Propose(ctx context.Context, recs []eventlog.Record) (eventlog.Offset, error) {
	off, err := r.sh.Propose(ctx, recs)
	switch {
	case err == nil:
		return off, nil
	case errors.Is(err, replica.ErrNotPrimary), errors.Is(err, shell.ErrLost):
		return 0, fmt.Errorf("%w: %v", server.ErrNotPrimary, err)
	case errors.Is(err, replica.ErrBackpressure), errors.Is(err, shell.ErrStopped), errors.Is(err, replica.ErrStopped):
		return 0, fmt.Errorf("%w: %v", server.ErrUnavailable, err)
	}
	return 0, err
}

func (r *replicator) Status() server.Status {
	st := r.sh.Status()
	out := server.Status{
		ID: uint32(st.ID), Role: st.Role, Epoch: st.Epoch, Primary: st.PrimaryAddr, Waiting: st.Waiting,
	}
	if out.Role == shell.RoleCandidate {
		out.Role = shell.RoleBackup
	}
	for _, rs := range st.Replicas {
		role := rs.Role
		if role == shell.RoleCandidate {
			role = shell.RoleBackup
		}
		out.Replicas = append(out.Replicas, wireStatus(rs, role))
	}
	return out
}

func (r *replicator) LagSamples(after uint64, limit int) ([]wireLagSample, uint64, uint64) {
	samples, next, dropped := r.sh.LagSamples(after, limit)
	out := make([]wireLagSample, len(samples))
	for i, s := range samples {
		out[i] = wireLagSample{Seq: s.Seq, Offset: s.Offset, Replica: s.Replica, AppendedAt: s.AppendedAt, DurableAt: s.DurableAt}
	}
	return out, next, dropped
}
