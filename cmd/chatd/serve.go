package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"golang.org/x/sync/errgroup"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/chat/server"
	"github.com/replichat/replichat/chat/wire"
	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica/standalone"
)

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
	if len(cfg.peers) > 1 {
		return errors.New("this build runs one-replica clusters only: replication is not available yet")
	}
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
	if err := state.Check(); err != nil {
		return fmt.Errorf("check chat state in %s: %w", cfg.dataDir, err)
	}
	sm := server.NewStateMachine(state)
	repl, err := standalone.Open(log, sm, logger)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	var tlsCfg *tls.Config
	if cfg.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	srv, err := server.New(server.Config{
		State:      state,
		Replicator: &standaloneReplicator{r: repl, id: cfg.id, addr: cfg.listen},
		TLS:        tlsCfg,
		MaxConns:   cfg.maxConns,
		Argon:      chat.ArgonParams{Time: uint32(cfg.argonTime), MemoryKiB: uint32(cfg.argonMemKiB), Threads: 1},
		Logger:     logger.With("component", "server"),
	})
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
	g.Go(func() error { return repl.Run(gctx) })
	g.Go(func() error { return srv.Serve(gctx, ln) })
	err = g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		logger.Info("shut down cleanly")
		return nil
	}
	return err
}

// standaloneReplicator adapts the one-replica runtime to the server.
type standaloneReplicator struct {
	r    *standalone.Replicator
	id   uint32
	addr string
}

func (s *standaloneReplicator) Propose(ctx context.Context, recs []eventlog.Record) (eventlog.Offset, error) {
	return s.r.Propose(ctx, recs)
}

func (s *standaloneReplicator) Status() server.Status {
	epoch, commit := uint64(s.r.Epoch()), uint64(s.r.Commit())
	return server.Status{
		ID: s.id, Role: wire.RolePrimary, Epoch: epoch, Primary: s.addr,
		Replicas: []wire.ReplicaStatus{{
			ID: s.id, Addr: s.addr, Role: wire.RolePrimary, Epoch: epoch,
			LogEnd: commit, Commit: commit, InSync: true,
		}},
	}
}
