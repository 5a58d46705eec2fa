package shell

import (
	"fmt"
	"slices"
	"sync"

	"github.com/replichat/replichat/eventlog"
)

// applier applies committed records to the state machine on its own
// goroutine, so that the loop keeps replicating (and acknowledging) while the
// state machine's transactions are written. It also settles the proposals
// waiting for their records to apply.
//
// The loop raises the target (the commit offset); the applier reads committed
// records from the log in batches and applies them in offset order.
type applier struct {
	log Log
	sm  StateMachine

	mu   sync.Mutex
	cond *sync.Cond
	// Invariant: applied <= target except transiently after a truncation,
	// which lowers both (see barrier).
	applied eventlog.Offset
	target  eventlog.Offset
	busy    bool // applying a batch outside the lock
	held    bool // the loop holds the applier (barrier)
	stop    bool
	err     error         // first failure; the applier stops
	failed  chan struct{} // closed with err
	waiters map[eventlog.Offset]*proposal
	done    chan struct{}
}

func newApplier(log Log, sm StateMachine, applied eventlog.Offset) *applier {
	a := &applier{log: log, sm: sm, applied: applied, target: applied,
		failed: make(chan struct{}), waiters: make(map[eventlog.Offset]*proposal), done: make(chan struct{})}
	a.cond = sync.NewCond(&a.mu)
	return a
}

// run is the applier goroutine; it returns after close.
func (a *applier) run() {
	defer close(a.done)
	for {
		a.mu.Lock()
		for !a.stop && (a.held || a.applied >= a.target || a.err != nil) {
			a.cond.Wait()
		}
		if a.stop {
			a.mu.Unlock()
			return
		}
		from, target := a.applied+1, a.target
		a.busy = true
		a.mu.Unlock()

		applied, err := a.applyBatch(from, target)

		a.mu.Lock()
		a.busy = false
		if err != nil {
			a.err = err
			close(a.failed)
		} else if len(applied) > 0 {
			a.settle(applied)
			a.applied = applied[len(applied)-1].Offset
		}
		a.cond.Broadcast()
		a.mu.Unlock()
	}
}

// applyChunkRecords bounds the records applied in one state transaction.
const applyChunkRecords = 256

// applyBatchBytes bounds one read of committed records.
const applyBatchBytes = 1 << 20

// applyBatch applies the records from `from` up to at most target, one read's
// worth, and returns them (in offset order, dense from `from`).
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
	for chunk := range slices.Chunk(recs, applyChunkRecords) {
		if err := a.sm.Apply(chunk); err != nil {
			return nil, fmt.Errorf("apply offsets %d-%d: %w", chunk[0].Offset, chunk[len(chunk)-1].Offset, err)
		}
	}
	return recs, nil
}

// settle answers the proposals whose records were just applied (recs, as
// applied). Called with a.mu held. A waiter whose offset now holds another
// request's record lost it to a failover.
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
			p.done <- proposalResult{err: ErrLost}
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

// wait registers p to be answered when offset last is applied.
func (a *applier) wait(last eventlog.Offset, p *proposal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if old := a.waiters[last]; old != nil {
		old.done <- proposalResult{err: ErrLost}
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

// truncated brings the applier in line with a log truncated after `after`:
// it waits for the batch in progress, fails the proposals above `after`, and
// if the state machine applied beyond it (a fork), resets it so the log is
// replayed. The loop calls it after truncating the log.
func (a *applier) truncated(after eventlog.Offset) (reset bool, err error) {
	a.mu.Lock()
	a.held = true
	for a.busy {
		a.cond.Wait()
	}
	defer func() {
		a.held = false
		a.cond.Broadcast()
		a.mu.Unlock()
	}()
	for off, p := range a.waiters {
		if off > after {
			p.done <- proposalResult{err: ErrLost}
			delete(a.waiters, off)
		}
	}
	a.target = min(a.target, after)
	if a.applied <= after {
		return false, nil
	}
	if err := a.sm.Reset(); err != nil {
		return false, fmt.Errorf("reset state machine: %w", err)
	}
	a.applied, a.target = 0, 0
	return true, nil
}

// appliedOffset is the last applied offset.
func (a *applier) appliedOffset() eventlog.Offset {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applied
}

// close stops the applier goroutine and waits for it.
func (a *applier) close() {
	a.mu.Lock()
	a.stop = true
	a.cond.Broadcast()
	a.mu.Unlock()
	<-a.done
}
