package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/eventlog"
)

// StateMachine is what the replication runtime applies committed records to:
// the chat state, plus the wake-ups that make pushes follow what is applied.
// It is the only writer of the chat state.
//
// It also rolls the state back after a fork (RollbackTo and SetStable: the
// replication shell's optional Rollbacker capability), snapshots and
// restores it (WriteSnapshot and RestoreSnapshot: the shell's Snapshotter,
// snapshot.go), makes deleted data gone from the disk (EnablePurge and
// RunPurge, purge.go), and watches what becomes of re-submitted records:
// each one rejected, or applied where the dedup table could not vouch that
// it had not been applied before, is logged as a warning, and all are
// counted (Resubmissions).
type StateMachine struct {
	state *chat.State
	// mu serializes the state's writers: the applier's Apply, Reset,
	// RollbackTo and RestoreSnapshot (one goroutine already) and the
	// purger's DropUndoThrough (chat.State allows one at a time).
	// WriteSnapshot and the queries do not take it.
	mu sync.Mutex
	// purge is what the purger knows of deletes not yet gone from the
	// disk (purge.go); its zero value is a disabled purger.
	purge purger
	// srv's pushers are woken after each applied batch for the users whose
	// unread queue changed; nil until a Server is attached.
	srv *Server
	// sync, if set, makes a reset or a rollback durable before it returns.
	sync func() error
	// resub counts the re-submitted records applied, by outcome.
	resub resubCounters
	// rollbacks counts the rollbacks of the state, by kind (observe.go).
	rollbacks rollbackCounters
}

// NewStateMachine returns the state machine over state. Attach the server
// with SetServer once it exists (the server needs the replicator, which
// needs the state machine).
func NewStateMachine(state *chat.State) *StateMachine {
	return &StateMachine{state: state}
}

// SetServer makes applied sends and deliveries wake srv's pushers, and
// re-submissions log to srv's logger. Call it before the replicator applies
// anything concurrently.
func (m *StateMachine) SetServer(srv *Server) {
	m.srv = srv
	srv.seqs.enable()
}

// SetSync makes Reset and RollbackTo call sync once they succeeded, before
// returning: a state store that does not sync its commits (chatdb) could
// lose a reset or a rollback to a power loss, and keep applied records that
// the truncated log no longer holds. Call it before the replicator starts.
func (m *StateMachine) SetSync(sync func() error) { m.sync = sync }

// Apply applies committed records in offset order.
func (m *StateMachine) Apply(recs []eventlog.Record) error {
	m.mu.Lock()
	results, err := m.state.ApplyWithResults(recs)
	m.mu.Unlock()
	m.purge.noteApplied(recs)
	// Even after an error: part of recs may have been applied.
	m.observe(results)
	if m.srv == nil {
		return err
	}
	m.srv.seqs.note(recs)
	m.srv.results.deliver(answered(results))
	if err != nil {
		return err
	}
	m.wake(recs)
	return nil
}

// answered returns the outcomes that carry an answer for the request
// (applied or rejected). The others leave the waiting request to look its
// result up: a duplicate's is the original one.
func answered(results []chat.AppliedResult) []chat.AppliedResult {
	keep := func(r chat.AppliedResult) bool {
		return r.Outcome == chat.OutcomeApplied || r.Outcome == chat.OutcomeRejected
	}
	for i, r := range results {
		if keep(r) {
			continue
		}
		// Copy only in the rare batch that needs it.
		out := append([]chat.AppliedResult(nil), results[:i]...)
		for _, r := range results[i+1:] {
			if keep(r) {
				out = append(out, r)
			}
		}
		return out
	}
	return results
}

// Applied is the offset of the last applied record.
func (m *StateMachine) Applied() (eventlog.Offset, error) { return m.state.Applied(), nil }

// Reset empties the chat state (Applied becomes 0) so that the log can be
// replayed into it: replication needs this when a fork forces it to truncate
// records the state already applied and RollbackTo cannot undo them. It
// restores the snapshot of an empty state, which is crash-safe: an
// interrupted reset leaves a marker that makes the state refuse to serve
// until a reset completes.
func (m *StateMachine) Reset() error {
	var empty bytes.Buffer
	if _, err := chat.NewState(chat.NewMemStore()).WriteSnapshot(&empty); err != nil {
		return fmt.Errorf("snapshot an empty state: %w", err)
	}
	m.mu.Lock()
	err := m.state.RestoreSnapshot(&empty)
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("reset chat state: %w", err)
	}
	m.rollbacks.reset.Add(1)
	// Everything the state held is deleted: gone from the disk once the
	// log no longer holds it either.
	m.purge.note(m.state.Applied())
	return m.synced("reset")
}

// RollbackTo undoes the records applied after `after` by the state's undo
// records (chat.State.RollbackTo) and returns the offset the state now ends
// at, at most after, once that is durable (SetSync). An error (the undo
// history does not reach back, or a store failure) means: Reset and replay
// instead. Until it returned, the caller either appends nothing to the
// truncated log or keeps a durable note that the rollback is due, to redo
// it at its next start (as the replication shell does).
func (m *StateMachine) RollbackTo(after eventlog.Offset) (eventlog.Offset, error) {
	m.mu.Lock()
	off, err := m.state.RollbackTo(after)
	m.mu.Unlock()
	if err != nil {
		return off, err
	}
	m.rollbacks.undone.Add(1)
	return off, m.synced("rollback")
}

// SetStable tells the state that records up to off are durable on every
// replica: they need no undo records.
func (m *StateMachine) SetStable(off eventlog.Offset) { m.state.SetStable(off) }

func (m *StateMachine) synced(what string) error {
	if m.sync == nil {
		return nil
	}
	if err := m.sync(); err != nil {
		return fmt.Errorf("sync chat state after %s: %w", what, err)
	}
	return nil
}

// ResubmissionCounts counts re-submitted records (records a replica
// truncated after a fork and sent again) by what applying them did.
type ResubmissionCounts struct {
	// Applied, Duplicate and Rejected partition them: applied with
	// success, skipped because they had landed already, or rejected for a
	// domain reason (their sender is told nothing more: the operator's log
	// has a warning for each).
	Applied, Duplicate, Rejected uint64
	// Unknown counts those applied (with success or not) where the dedup
	// table could not tell whether they had been applied before: possible
	// duplicates. They are also counted in Applied or Rejected.
	Unknown uint64
}

type resubCounters struct {
	applied, duplicate, rejected, unknown atomic.Uint64
}

// Resubmissions returns the counts of re-submitted records applied since the
// state machine was created, for a metrics endpoint.
func (m *StateMachine) Resubmissions() ResubmissionCounts {
	c := &m.resub
	return ResubmissionCounts{Applied: c.applied.Load(), Duplicate: c.duplicate.Load(),
		Rejected: c.rejected.Load(), Unknown: c.unknown.Load()}
}

// observe counts and logs what became of the re-submitted records among
// results.
func (m *StateMachine) observe(results []chat.AppliedResult) {
	for _, r := range results {
		if !r.Resubmitted {
			continue
		}
		c := &m.resub
		switch r.Outcome {
		case chat.OutcomeApplied:
			c.applied.Add(1)
		case chat.OutcomeDuplicate:
			c.duplicate.Add(1)
		case chat.OutcomeRejected:
			c.rejected.Add(1)
			m.logger().Warn("re-submitted record rejected: a request acknowledged before a fork did not survive it",
				resubAttrs(r, slog.String("code", r.Result.Code), slog.String("message", r.Result.Message))...)
		}
		if r.Unknown && (r.Outcome == chat.OutcomeApplied || r.Outcome == chat.OutcomeRejected) {
			c.unknown.Add(1)
			m.logger().Warn("re-submitted record applied below its client's dedup window, where applied requests are no longer known: it may be a duplicate",
				resubAttrs(r, slog.String("outcome", r.Outcome.String()))...)
		}
	}
}

func resubAttrs(r chat.AppliedResult, more ...any) []any {
	return append([]any{slog.String("client", r.ClientID), slog.Uint64("seq", r.Seq),
		slog.Uint64("offset", uint64(r.Offset)), slog.Uint64("orig_epoch", uint64(r.OrigEpoch)),
		slog.Uint64("orig_offset", uint64(r.OrigOffset))}, more...)
}

func (m *StateMachine) logger() *slog.Logger {
	if m.srv == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.srv.logger
}

// wake nudges the pushers of every user whose unread queue grew (a send to
// them) or shrank (a delivery, which frees their push window).
func (m *StateMachine) wake(recs []eventlog.Record) {
	if !m.srv.anyListening() {
		// Nobody to wake (always so on a backup): skip decoding the events.
		// A session that starts listening later reads its queue first.
		return
	}
	var uids []uint64
	for _, r := range recs {
		if !strings.HasPrefix(r.Type, chat.TypePrefix) {
			continue
		}
		ev, err := chat.DecodeEvent(r.Type, r.Data)
		if err != nil {
			continue // Apply accepted it, so this cannot happen; pushes are best effort anyway
		}
		switch ev := ev.(type) {
		case *chat.SendEvent:
			uids = append(uids, ev.ToUID)
		case *chat.DeliverEvent:
			uids = append(uids, ev.UID)
		}
	}
	for _, uid := range uids {
		m.srv.wake(uid)
	}
}
