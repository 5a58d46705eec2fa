package shell

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

// applier applies committed records to the state machine on its own
// goroutine, so that the loop keeps replicating (and acknowledging) while the
// state machine's transactions are written. It also settles the proposals
// waiting for their records to apply, and rolls the state back when the log
// was truncated below what it applied (after a partition forked the log):
// that too happens here, so that the loop keeps heartbeating, fetching and
// re-submitting while the state is repaired.
//
// The loop raises the target (the commit offset); the applier reads committed
// records from the log in batches and applies them in offset order.
type applier struct {
	log    Log
	sm     StateMachine
	logger *slog.Logger

	// stopBatch asks the batch in progress to stop after its current chunk:
	// a truncation waits for that batch, and its wait must stay short.
	stopBatch atomic.Bool

	mu   sync.Mutex
	cond *sync.Cond
	// applied is the state machine's applied offset as the applier last saw
	// it. Invariant: applied <= target, except after a truncation, which
	// lowers target and schedules a rollback (rollbackPending) until the
	// rollback brings applied back to at most rollbackTo.
	applied eventlog.Offset
	target  eventlog.Offset
	// stable is the latest Ready.Stable, handed to the state machine (a
	// Rollbacker) before the next batch.
	stable eventlog.Offset
	// A rollback to at most rollbackTo is due (pending), or running
	// (rollingBack, to rollingTo). rolledBack is set when one finished and
	// the loop has not yet taken note (it then clears its durable marker).
	rollbackPending bool
	rollbackTo      eventlog.Offset
	rollingBack     bool
	rollingTo       eventlog.Offset
	rolledBack      bool

	busy bool // applying a batch outside the lock
	held bool // the loop holds the applier (a truncation in progress)
	// spacePaused: the disk guard says the disk is nearly full; noSpace:
	// the last batch failed with ENOSPC (the state is unchanged by it) and
	// waits for retryIfIdle, which the loop calls every tick.
	spacePaused bool
	noSpace     bool

	stop    bool
	err     error         // first failure; the applier stops
	failed  chan struct{} // closed with err
	waiters map[eventlog.Offset]*proposal
	done    chan struct{}
	// changed is closed and replaced whenever applied changes, for
	// waitApplied.
	changed chan struct{}
	// restoreBase, if set, restores the state from a snapshot at or before
	// an offset, for a rollback the state machine cannot do itself: ok
	// false if there is none whose following records the log still holds.
	// Set before run starts.
	restoreBase func(to eventlog.Offset) (off eventlog.Offset, ok bool, err error)
}

// newApplier returns an applier resuming at applied. If rollbackTo is
// non-zero, the state must first be rolled back to at most that offset (a
// rollback that a crash interrupted, see shell.rollbackKey).
func newApplier(log Log, sm StateMachine, applied eventlog.Offset, logger *slog.Logger) *applier {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &applier{log: log, sm: sm, logger: logger, applied: applied, target: applied,
		failed: make(chan struct{}), waiters: make(map[eventlog.Offset]*proposal), done: make(chan struct{}),
		changed: make(chan struct{})}
	a.cond = sync.NewCond(&a.mu)
	return a
}

// scheduleRollback makes the applier roll the state back to at most to
// before it applies anything. Called before run starts (a rollback found
// pending at start-up) or by truncated.
func (a *applier) scheduleRollback(to eventlog.Offset) {
	if a.rollbackPending {
		a.rollbackTo = min(a.rollbackTo, to)
	} else {
		a.rollbackPending, a.rollbackTo = true, to
	}
	a.target = min(a.target, to)
}

// run is the applier goroutine; it returns after close.
func (a *applier) run() {
	defer close(a.done)
	var stableSent eventlog.Offset // owned by this goroutine
	for {
		a.mu.Lock()
		for !a.stop && (a.held || a.err != nil || a.spacePaused || a.noSpace || (!a.rollbackPending && a.applied >= a.target)) {
			a.cond.Wait()
		}
		if a.stop {
			a.mu.Unlock()
			return
		}
		if a.rollbackPending {
			a.runRollback()
			a.mu.Unlock()
			continue
		}
		from, target, stable := a.applied+1, a.target, a.stable
		a.busy = true
		a.mu.Unlock()

		if rb, ok := a.sm.(Rollbacker); ok && stable > stableSent {
			rb.SetStable(stable)
			stableSent = stable
		}
		applied, err := a.applyBatch(from, target)

		a.mu.Lock()
		a.busy = false
		if len(applied) > 0 {
			a.settle(applied)
			a.setApplied(applied[len(applied)-1].Offset)
		}
		switch {
		case IsNoSpace(err):
			// A failed transaction changed nothing: retry once there is
			// room (the loop's next tick), rather than stop the replica.
			if !a.noSpace {
				a.logger.Warn("applying to the state failed for want of disk space; retrying", "err", err)
			}
			a.noSpace = true
		case err != nil:
			a.fail(err)
		}
		a.cond.Broadcast()
		a.mu.Unlock()
	}
}

// runRollback carries out the pending rollback, with a.mu held on entry
// and on return (released meanwhile: a rollback may take a while, and the
// loop must not wait for it).
func (a *applier) runRollback() {
	to := a.rollbackTo
	a.rollbackPending = false
	a.rollingBack, a.rollingTo = true, to
	a.mu.Unlock()
	applied, err := a.rollback(to)
	a.mu.Lock()
	a.rollingBack = false
	if err != nil {
		a.fail(err)
		return
	}
	a.setApplied(applied)
	a.rolledBack = true
	if a.rollbackPending && a.applied <= a.rollbackTo {
		// A truncation while this rollback ran asked for one that this
		// rollback already covers.
		a.rollbackPending = false
	}
	a.cond.Broadcast()
}

// rollback undoes the state machine's records after `to`, by its own undo
// history if it has one reaching back that far, else by a reset (the log is
// then replayed from its start), and returns the new applied offset.
func (a *applier) rollback(to eventlog.Offset) (eventlog.Offset, error) {
	if rb, ok := a.sm.(Rollbacker); ok {
		off, err := rb.RollbackTo(to)
		if err == nil {
			a.logger.Info("rolled the state back after the log was truncated", "to", off, "truncated_after", to)
			return off, nil
		}
		a.logger.Warn("cannot roll the state back by its undo history; rebuilding it from the log", "truncated_after", to, "err", err)
	}
	if a.restoreBase != nil {
		off, ok, err := a.restoreBase(to)
		if err != nil {
			return 0, err
		}
		if ok {
			a.logger.Warn("state restored from a snapshot after the log was truncated below it; replaying the log after it",
				"snapshot", off, "truncated_after", to)
			return off, nil
		}
	}
	if first := a.log.First(); first > 1 {
		return 0, fmt.Errorf("%w: the state must go back to offset %d, the log starts at %d and no snapshot reaches back that far",
			replica.ErrForkTooDeep, to, first)
	}
	if err := a.sm.Reset(); err != nil {
		return 0, fmt.Errorf("reset state machine: %w", err)
	}
	a.logger.Warn("state reset after the log was truncated below it; replaying the log", "truncated_after", to)
	return 0, nil
}

// setSpacePaused pauses the applier while a write failed for want of space
// and the core waits for room (outOfSpace: its state transactions would
// fail too), and resumes it.
func (a *applier) setSpacePaused(paused bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.spacePaused = paused
	a.cond.Broadcast()
}

// retryIfIdle lets a batch that failed with ENOSPC be tried again, unless
// the disk guard holds the applier.
func (a *applier) retryIfIdle() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.noSpace && !a.spacePaused {
		a.noSpace = false
		a.cond.Broadcast()
	}
}

// fail records the applier's first failure. Called with a.mu held.
func (a *applier) fail(err error) {
	if a.err == nil {
		a.err = err
		close(a.failed)
	}
}

// setApplied records a new applied offset and wakes waitApplied. Called with
// a.mu held.
func (a *applier) setApplied(off eventlog.Offset) {
	a.applied = off
	close(a.changed)
	a.changed = make(chan struct{})
}

// applyChunkRecords bounds the records applied in one state transaction.
const applyChunkRecords = 256

// applyBatchBytes bounds one read of committed records.
const applyBatchBytes = 1 << 20

// applyBatch applies the records from `from` up to at most target, one read's
// worth, and returns those it applied (in offset order, dense from `from`):
// fewer than it read if stopBatch asked it to stop, and those before a
// failure along with the error.
func (a *applier) applyBatch(from, target eventlog.Offset) ([]eventlog.Record, error) {
	recs, err := a.log.Read(from, applyBatchBytes)
	if err != nil {
		return nil, fmt.Errorf("read committed records from %d: %w", from, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("commit %d is beyond the log end %d", target, a.log.Last())
	}
	for i, r := range recs {
		if r.Offset != from+eventlog.Offset(i) {
			panic(fmt.Sprintf("shell: read from %d returned offset %d at %d", from, r.Offset, i))
		}
		if r.Offset > target {
			recs = recs[:i]
			break
		}
	}
	// Apply in chunks: each chunk is one state transaction, and a
	// transaction's cost grows faster than its size (Badger sorts a
	// transaction's pending writes whenever the state machine scans inside
	// it), while a catch-up read brings thousands of records at once.
	done := 0
	for chunk := range slices.Chunk(recs, applyChunkRecords) {
		if done > 0 && a.stopBatch.Load() {
			break
		}
		if err := a.sm.Apply(chunk); err != nil {
			return recs[:done], fmt.Errorf("apply offsets %d-%d: %w", chunk[0].Offset, chunk[len(chunk)-1].Offset, err)
		}
		done += len(chunk)
	}
	return recs[:done], nil
}

// settle answers the proposals whose records were just applied (recs, as
// applied). Called with a.mu held. A waiter whose offset now holds another
// request's record lost it to a failover: its own record was truncated and
// may yet be re-submitted, so its outcome is unknown.
func (a *applier) settle(recs []eventlog.Record) {
	if len(a.waiters) == 0 {
		return
	}
	for _, r := range recs {
		p := a.waiters[r.Offset]
		if p == nil {
			continue
		}
		delete(a.waiters, r.Offset)
		if r.ClientID == p.clientID && r.Seq == p.seq {
			p.done <- proposalResult{last: r.Offset}
		} else {
			p.done <- proposalResult{err: fmt.Errorf("%w: its offset %d holds another request after a failover", ErrOutcomeUnknown, r.Offset)}
		}
	}
}

// advance raises the target to commit.
func (a *applier) advance(commit eventlog.Offset) {
	a.mu.Lock()
	if commit > a.target {
		a.target = commit
		a.cond.Broadcast()
	}
	a.mu.Unlock()
}

// setStable records the latest Ready.Stable for the state machine.
func (a *applier) setStable(stable eventlog.Offset) {
	a.mu.Lock()
	a.stable = max(a.stable, stable)
	a.mu.Unlock()
}

// wait registers p to be answered when offset last is applied.
func (a *applier) wait(last eventlog.Offset, p *proposal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if old := a.waiters[last]; old != nil {
		old.done <- proposalResult{err: fmt.Errorf("%w: its offset %d was given to another request", ErrOutcomeUnknown, last)}
	}
	a.waiters[last] = p
}

// failAll answers every waiting proposal with err.
func (a *applier) failAll(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for off, p := range a.waiters {
		p.done <- proposalResult{err: err}
		delete(a.waiters, off)
	}
}

func (a *applier) hasWaiters() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.waiters) > 0
}

// truncated brings the applier in line with a log about to be truncated
// after `after`. It waits for the batch in progress (stopped after its
// current chunk), answers the proposals above `after` (their records may yet
// be re-submitted: outcome unknown), and, if the state machine applied
// beyond `after`, schedules a rollback, which the applier carries out on its
// own goroutine. It reports whether it did: the caller must then make the
// rollback durable as a requirement (rollbackKey) before the log changes. The
// loop calls it before truncating the log, so that no batch reads a log in
// the middle of changing.
func (a *applier) truncated(after eventlog.Offset) (rollback bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopBatch.Store(true)
	for a.busy {
		a.cond.Wait()
	}
	a.stopBatch.Store(false)
	for off, p := range a.waiters {
		if off > after {
			p.done <- proposalResult{err: fmt.Errorf("%w: the log was truncated below its offset %d", ErrOutcomeUnknown, off)}
			delete(a.waiters, off)
		}
	}
	a.target = min(a.target, after)
	// What the state will hold once a rollback in progress is done.
	ahead := a.applied > after
	if a.rollingBack && a.rollingTo <= after {
		ahead = false
	}
	if a.rollbackPending || ahead {
		a.scheduleRollback(after)
		a.cond.Broadcast()
		return true
	}
	return false
}

// takeRolledBack reports whether a rollback finished since the last call
// and none is due or running: the loop may then drop its durable marker.
func (a *applier) takeRolledBack() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.rolledBack || a.rollbackPending || a.rollingBack {
		return false
	}
	a.rolledBack = false
	return true
}

// appliedOffset is the last applied offset that the state will keep: 0
// while a rollback is due or running (it may end anywhere at or below the
// truncation point, down to a reset).
func (a *applier) appliedOffset() eventlog.Offset {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.keptLocked()
}

func (a *applier) keptLocked() eventlog.Offset {
	if a.rollbackPending || a.rollingBack {
		return 0
	}
	return a.applied
}

// waitApplied returns once the state has applied (and will keep) every
// record up to off, or ctx is done, or the applier failed or stopped.
func (a *applier) waitApplied(ctx context.Context, off eventlog.Offset) error {
	for {
		a.mu.Lock()
		kept, changed, err, stopped := a.keptLocked(), a.changed, a.err, a.stop
		a.mu.Unlock()
		switch {
		case kept >= off:
			return nil
		case err != nil:
			return err
		case stopped:
			return ErrStopped
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// close stops the applier goroutine and waits for it.
func (a *applier) close() {
	a.mu.Lock()
	a.stop = true
	a.cond.Broadcast()
	close(a.changed)
	a.changed = make(chan struct{})
	a.mu.Unlock()
	<-a.done
}
