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
	return slog.New(h).With("node", cfg.id)
}

// serve opens the replica's data, starts replication and the server, and
// runs until ctx is done.
func serve(ctx context.Context, cfg config, stderr io.Writer) (err error) {
	logger := newLogger(cfg, stderr)
	if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	log, err := eventlog.OpenBadger(cfg.dataDir, eventlog.BadgerOptions{Logger: logger.With("component", "badger")})
	if err != nil {
		return fmt.Errorf("open data directory %s: %w", cfg.dataDir, err)
	}
	defer func() {
		if cerr := log.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close data directory: %w", cerr)
		}
	}()
	state := chat.NewState(chatdb.New(log.DB()))
	sm := server.NewStateMachine(state)
	if err := state.Check(); errors.Is(err, chat.ErrIncompleteRestore) {
		// A reset of the state (after a fork) was interrupted: finish it; the
		// log is intact and replication replays it.
		logger.Warn("chat state reset was interrupted; resetting again and replaying the log")
		if err := sm.Reset(); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("check chat state in %s: %w", cfg.dataDir, err)
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
			Logger: logger.With("component", "transport"),
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
		Logger:       logger.With("component", "replica"),
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
