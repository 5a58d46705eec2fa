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
//
// and, beside them, <data>/snapshots: the snapshots of the chat state the
// replication shell takes (--snapshot-every) and installs, each in a
// directory named by the offset it covers.
const (
	logDir       = "log"
	stateDir     = "state"
	snapshotsDir = "snapshots"
)

// openData opens the event log, then the chat state, in cfg.dataDir,
// creating them if needed, and checks them (repair.go: a damaged log is
// refused, or repaired with --repair; a damaged state is rebuilt). It
// refuses a data directory in the old layout (one Badger database directly
// in dataDir) rather than start an empty log next to it.
func openData(cfg config, logger *slog.Logger, observeSync func(time.Duration)) (*checkedData, error) {
	dataDir := cfg.dataDir
	if _, err := os.Stat(filepath.Join(dataDir, "MANIFEST")); err == nil {
		// Moving the files into log/ is not enough: the old database also
		// holds the state, and a replica restored from a snapshot has no log
		// from offset 1 to rebuild it from.
		return nil, fmt.Errorf("data directory %s has the old layout (one Badger database directly in it); "+
			"this chatd keeps %s and %s: start this replica on a new empty directory and let it catch up from the cluster",
			dataDir, filepath.Join(dataDir, logDir), filepath.Join(dataDir, stateDir))
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	return openChecked(cfg, logger, observeSync)
}

// serve opens the replica's data, starts replication and the server, and
// runs until ctx is done.
func serve(ctx context.Context, cfg config, stderr io.Writer) (err error) {
	// The replication core and the transport tag their records with the
	// node id themselves; everything else gets it here.
	base := newLogger(cfg, stderr)
	// What the start-up logs below WARN is held until the replica listens:
	// a start that fails is one line on stderr (CONTRACT.md), its error.
	startLog := newHeldHandler(base.With("node", cfg.id).Handler())
	defer startLog.releaseFrom(slog.LevelWarn) // a no-op once released
	logger := slog.New(startLog)
	defer applyMemorySettings(memorySettings{limitMiB: cfg.memLimitMiB, gcPercent: cfg.gcPercent})()
	logger.Debug("memory settings", "memory_limit_bytes", debug.SetMemoryLimit(-1), "gc_percent", cfg.gcPercent)
	var mx *metrics // nil without --metrics-addr: no hooks
	if cfg.metricsAddr != "" {
		mx = newMetrics(cfg.id, cfg.peers)
	}
	data, err := openData(cfg, logger, mx.syncObserver())
	if err != nil {
		return err
	}
	defer data.unlock() // last: after both databases are closed
	log, stateDB := data.log, data.stateDB
	existed, err := checkMembership(log, cfg)
	if err == nil {
		err = checkSecret(cfg, existed)
	}
	if err != nil {
		return errors.Join(err, stateDB.Close(), log.Close())
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
	state := data.state
	sm := server.NewStateMachine(state)
	// The state database does not fsync its commits; a reset or a rollback
	// (after a fork) must be durable before the log is replayed into it, or
	// a power loss could leave applied records the log no longer holds.
	sm.SetSync(stateDB.Sync)
	var incomplete *chat.IncompleteRollbackError
	switch err := state.LoadErr(); {
	case err == nil:
	case errors.Is(err, chat.ErrIncompleteRestore):
		// A reset of the state was interrupted: finish it; the log is
		// intact and replication replays it.
		logger.Warn("chat state reset was interrupted; resetting again and replaying the log")
		if err := sm.Reset(); err != nil {
			return err
		}
	case errors.As(err, &incomplete):
		// A rollback of the state (after a fork) was interrupted: finish
		// it before anything is applied (or reset, if it cannot).
		logger.Warn("chat state rollback was interrupted; finishing it", "to", incomplete.To)
		if _, err := sm.RollbackTo(incomplete.To); err != nil {
			logger.Warn("cannot finish the rollback; resetting the state and replaying the log", "err", err)
			if err := sm.Reset(); err != nil {
				return err
			}
		}
	default:
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
		DiskFree:     diskFreeProbe(cfg),
		DiskReserve:  uint64(cfg.diskReserveMiB) << 20,
		ObserveLag:   mx.lagObserver(),
		// Always set, so that a replica that takes none (--snapshot-every
		// 0) still installs one from a primary that compacted past it.
		SnapshotDir:   filepath.Join(cfg.dataDir, snapshotsDir),
		SnapshotEvery: cfg.snapshotEvery,
		RetainEvents:  cfg.retainEvents,
		ForkRetain:    cfg.forkRetain,
		SnapshotShare: cfg.snapshotCPU,
		Logger:        base.With("component", "replica"),
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
	srvCfg.ObserveRequest = mx.requestObserver()
	if peerTransport != nil {
		srvCfg.Peer = peerTransport.Accept
	}
	srv, err := server.New(srvCfg)
	if err != nil {
		return err
	}
	sm.SetServer(srv)
	// Deletes really delete: once compaction has removed the log's records
	// of what was deleted, both databases are purged of their copies.
	sm.EnablePurge(server.PurgeConfig{
		Floor: func() eventlog.Offset { return log.First() - 1 },
		Purge: func(ctx context.Context) error {
			if err := log.Purge(ctx); err != nil {
				return err
			}
			return stateDB.Purge(ctx)
		},
		Hold:   func() bool { return sh.Status().DiskFull != "" },
		Logger: logger.With("component", "purge"),
	})

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	startLog.release(true)
	logger.Info("serving", "addr", ln.Addr().String(), "data", cfg.dataDir, "replicas", len(cfg.peers))
	g, gctx := errgroup.WithContext(ctx)
	if mx != nil {
		h := mx.handler(metricSources{replicas: len(cfg.peers), status: sh.Status, sessions: srv.Sessions,
			resubmissions: sm.Resubmissions, rollbacks: sm.Rollbacks}, logger)
		serveMetrics, err := metricsServer(gctx, cfg.metricsAddr, h, logger)
		if err != nil {
			ln.Close()
			return err
		}
		g.Go(serveMetrics)
	}
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
	g.Go(func() error { return sm.RunPurge(gctx) })
	g.Go(func() error { data.witness.run(gctx, sh.Status); return nil })
	g.Go(func() error { return scrubLog(log, data.witness, cfg, logger) })
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
	data.witness.observe(sh.Status())
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
	case errors.Is(err, shell.ErrOutcomeUnknown):
		return 0, fmt.Errorf("%w: %v", server.ErrOutcomeUnknown, err)
	// The rest are definite: the core never took the records.
	case errors.Is(err, replica.ErrNotPrimary):
		return 0, fmt.Errorf("%w: %v", server.ErrNotPrimary, err)
	case errors.Is(err, replica.ErrDiskFull):
		msg := r.sh.Status().DiskFull
		if msg == "" {
			msg = err.Error()
		}
		return 0, fmt.Errorf("%w: %s", server.ErrUnavailable, msg)
	case errors.Is(err, replica.ErrBackpressure), errors.Is(err, shell.ErrStopped), errors.Is(err, replica.ErrStopped):
		return 0, fmt.Errorf("%w: %v", server.ErrUnavailable, err)
	}
	return 0, err
}

// ReadBarrier implements server.ReadBarrier with the shell's lease and
// apply barrier.
func (r *replicator) ReadBarrier(ctx context.Context) error {
	err := r.sh.ReadBarrier(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, replica.ErrNotPrimary):
		return fmt.Errorf("%w: %v", server.ErrNotPrimary, err)
	case errors.Is(err, shell.ErrNoLease), errors.Is(err, shell.ErrStopped):
		return fmt.Errorf("%w: %v", server.ErrUnavailable, err)
	}
	return err
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
		ws := wireStatus(rs, role)
		if rs.ID == st.ID {
			ws.DiskFull = st.DiskFull
		}
		out.Replicas = append(out.Replicas, ws)
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
