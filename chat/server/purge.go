package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

// Deletes really delete. A deleted message's body, or a deleted account's
// name and password hash, is held on a replica's disk by:
//   - the log's records (the send, the register), until compaction removes
//     them: records at or below the snapshot's offset minus the retained
//     events;
//   - the chat state's undo records of the batches that deleted them,
//     until those batches are stable or below the log's first record
//     (no truncation can reach them any more);
//   - for an account, its views, removed a bounded number per later record
//     (chat's purge backlog);
//   - the files of both Badger databases, which keep deleted and
//     overwritten values until their memtables are flushed and their
//     levels compacted (badgerdb.Purge forces both, blocking no write).
//
// The purger waits for the first two, then runs the purge: once the log is
// compacted past the batch that applied a delete (the log's floor, First
// minus one, reaches it), it drops the undo records through the floor and
// purges both databases. The shell compacts up to RetainEvents records
// before the latest snapshot, and never past the base snapshot (the newest
// beyond any fork's reach), dropping the snapshots older than the base: so
// a delete applied at offset d is gone from every file of this replica
// after the first snapshot taken at or after d + RetainEvents, at most
// SnapshotEvery + RetainEvents records after d, while every replica is up
// (the base is then the latest snapshot); while one is down, the base
// trails ForkRetain records behind, and so does the purge. Plus the
// purge's run time. An installed snapshot purges what the state it
// replaced held.
//
// Only the offsets of the oldest and newest batch with a delete not yet
// purged are kept: a purge at floor f clears those at or below f, and if a
// newer one is pending, the next purge comes at the next compaction, past
// f. Nothing is persisted: at start (EnablePurge) everything applied so
// far counts as pending, purged at once if the log is compacted already.

// PurgeConfig wires the purger to the databases.
type PurgeConfig struct {
	// Floor returns the offset up to which the log is compacted: no
	// record at or below it is left in the log (its First() - 1).
	Floor func() eventlog.Offset
	// Purge makes what the databases deleted gone from their files
	// (eventlog.BadgerLog.Purge, then chatdb.DB.Purge). It must block no
	// write to them.
	Purge func(ctx context.Context) error
	// Hold, if set, holds purges back while it reports true: a purge
	// writes (filler that pushes Badger's memtables out, up to a few
	// memtables' worth), so chatd holds it while the disk is below its
	// reserve (--disk-reserve), as it holds every other write.
	Hold func() bool
	// Every is how often the purger looks at the floor. Default 1s.
	Every time.Duration
	// Logger gets a line per purge; nil: the server's.
	Logger *slog.Logger
}

// purger is the StateMachine's purge state. Its zero value is disabled.
type purger struct {
	mu      sync.Mutex
	enabled bool
	// first and last bound the ends of the applied batches with a delete
	// (or a replaced state) not yet purged; first == 0 when none.
	// Invariant: first <= last.
	first, last eventlog.Offset
	wake        chan struct{} // capacity 1
	cfg         PurgeConfig
}

// note records that the batch applied up to off deleted something.
func (p *purger) note(off eventlog.Offset) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.enabled || off == 0 {
		return
	}
	p.widen(off)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// noteApplied notes the batch recs if it holds a delete.
func (p *purger) noteApplied(recs []eventlog.Record) {
	if len(recs) == 0 {
		return
	}
	for _, r := range recs {
		if isDelete(r.Type) {
			p.note(recs[len(recs)-1].Offset)
			return
		}
	}
}

// due reports whether a delete not yet purged is at or below floor.
func (p *purger) due(floor eventlog.Offset) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first != 0 && p.first <= floor
}

// done records a purge at floor; more (non-zero) keeps a purge pending
// at that offset.
func (p *purger) done(floor, more eventlog.Offset) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.last <= floor:
		p.first, p.last = 0, 0
	default:
		p.first = floor + 1 // some delete in (floor, last]: at the next compaction
	}
	if more != 0 {
		p.widen(more)
	}
}

// widen makes [first, last] include off (p.mu held).
func (p *purger) widen(off eventlog.Offset) {
	if p.first == 0 {
		p.first = off
	}
	p.first, p.last = min(p.first, off), max(p.last, off)
}

// EnablePurge sets the purger up; RunPurge then runs it. Call it before
// the replicator applies anything. What was applied before (deleted
// before a restart) counts as pending.
func (m *StateMachine) EnablePurge(cfg PurgeConfig) {
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	p := &m.purge
	p.mu.Lock()
	p.enabled, p.cfg, p.wake = true, cfg, make(chan struct{}, 1)
	p.mu.Unlock()
	// Once the log is compacted (at once, if it is already), then once it
	// is past what is applied now.
	if applied := m.state.Applied(); applied > 0 {
		p.note(max(1, min(cfg.Floor(), applied)))
		p.note(applied)
	}
}

// RunPurge purges deleted data from the disk as the log's floor passes it
// (see the top of this file), until ctx is done; it returns nil then. A
// purge that fails is logged and tried again at the next look. Run it on a
// goroutine of its own, after EnablePurge.
func (m *StateMachine) RunPurge(ctx context.Context) error {
	p := &m.purge
	p.mu.Lock()
	cfg, wake, enabled := p.cfg, p.wake, p.enabled
	p.mu.Unlock()
	if !enabled {
		<-ctx.Done()
		return nil
	}
	logger := cfg.Logger
	if logger == nil {
		logger = m.logger()
	}
	t := time.NewTicker(cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-wake:
		}
		floor := cfg.Floor()
		if !p.due(floor) || (cfg.Hold != nil && cfg.Hold()) {
			continue
		}
		start := time.Now()
		// The undo records of the batches that deleted: they hold the
		// values before the delete. No truncation reaches below the log's
		// first record, so they are of no use any more.
		m.mu.Lock()
		err := m.state.DropUndoThrough(floor)
		m.mu.Unlock()
		if err == nil {
			err = cfg.Purge(ctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			logger.Warn("cannot purge deleted data from the disk; trying again later", "floor", uint64(floor), "err", err)
			continue
		}
		// A deleted account whose views later records still remove: purge
		// again once the log is past what is applied now.
		var more eventlog.Offset
		if n, err := m.state.PurgeBacklog(); err != nil || n > 0 {
			more = m.state.Applied()
		}
		p.done(floor, more)
		logger.Info("purged deleted data from the disk", "floor", uint64(floor),
			"took", time.Since(start).Round(time.Millisecond))
	}
}

// isDelete reports whether a record of type typ deletes user data.
func isDelete(typ string) bool {
	return typ == chat.TypeDeleteMessages || typ == chat.TypeDeleteAccount
}
