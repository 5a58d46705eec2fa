// Package standalone runs a one-replica "cluster": the replica is always the
// primary, and a record is committed as soon as it is durable in the local log.
//
// It exists so that the chat server has the same shape with one replica as
// with three: the server proposes records and waits until they are committed
// and applied, through the same Replicator contract the replicated runtime
// fulfils. Concurrent proposals share one fsync through
// eventlog.GroupCommitter.
//
// Every start opens a new epoch (recorded in the epoch history and as a
// "replica.epoch" record), exactly as a replicated primary does after a
// failover, so message ids minted per epoch stay unique across restarts.
package standalone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog"
)

// Log is what the standalone replicator needs of the event log.
type Log interface {
	Append(recs []eventlog.Record) error
	Read(from eventlog.Offset, maxBytes int) ([]eventlog.Record, error)
	Last() eventlog.Offset
	LastEpoch() eventlog.Epoch
	Epochs() []eventlog.EpochStart
	AddEpoch(e eventlog.EpochStart) error
}

// StateMachine receives committed records in offset order. Applied reports the
// last offset it has applied, so that a restart resumes after it.
type StateMachine interface {
	Apply(recs []eventlog.Record) error
	Applied() (eventlog.Offset, error)
}

// EpochRecordType is the record type of the epoch-start record.
const EpochRecordType = "replica.epoch"

// EpochStartEvent is the payload of an epoch-start record.
type EpochStartEvent struct {
	Epoch   eventlog.Epoch `msgpack:"epoch"`
	Primary uint32         `msgpack:"primary"`
}

// readBatchBytes bounds one read of committed records for applying.
const readBatchBytes = 1 << 20

// Replicator is the one-replica implementation of the server's Replicator.
type Replicator struct {
	log    Log
	sm     StateMachine
	gc     *eventlog.GroupCommitter
	logger *slog.Logger
	epoch  eventlog.Epoch

	// mu serializes applying; applied is the state machine's position.
	// Invariant: applied <= log.Last().
	mu      sync.Mutex
	applied eventlog.Offset
}

// Open brings the state machine up to date with the log, starts a new epoch
// and returns a Replicator. The caller must call Run.
func Open(log Log, sm StateMachine, logger *slog.Logger) (*Replicator, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	applied, err := sm.Applied()
	if err != nil {
		return nil, fmt.Errorf("read applied offset: %w", err)
	}
	if applied > log.Last() {
		return nil, fmt.Errorf("state applied up to offset %d but the log ends at %d", applied, log.Last())
	}
	r := &Replicator{log: log, sm: sm, logger: logger, applied: applied}
	r.gc = eventlog.NewGroupCommitter(log, eventlog.GroupOptions{})
	if err := r.applyThrough(log.Last()); err != nil {
		return nil, err
	}
	var last eventlog.Epoch
	if h := log.Epochs(); len(h) > 0 {
		last = h[len(h)-1].Epoch
	}
	r.epoch = last + 1
	if err := log.AddEpoch(eventlog.EpochStart{Epoch: r.epoch, Start: log.Last() + 1}); err != nil {
		return nil, fmt.Errorf("start epoch %d: %w", r.epoch, err)
	}
	logger.Info("primary", "epoch", r.epoch, "log_end", log.Last(), "applied", r.applied)
	return r, nil
}

// Run drives group commit until ctx is done.
func (r *Replicator) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- r.gc.Run(ctx) }()
	// The epoch-start record is the first write of the epoch, as on a
	// replicated primary; it is proposed once the committer runs.
	data, err := msgpack.Marshal(&EpochStartEvent{Epoch: r.epoch})
	if err == nil {
		_, err = r.Propose(ctx, []eventlog.Record{{Type: EpochRecordType, Data: data}})
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("write epoch-start record: %w", err)
	}
	return <-errc
}

// Epoch is the epoch this replica leads.
func (r *Replicator) Epoch() eventlog.Epoch { return r.epoch }

// Propose makes recs durable, applies them, and returns the offset of the
// last one. Offsets and epochs are assigned here; the caller sets the rest.
func (r *Replicator) Propose(ctx context.Context, recs []eventlog.Record) (eventlog.Offset, error) {
	for i := range recs {
		recs[i].Epoch = r.epoch
	}
	last, err := r.gc.Append(ctx, recs)
	if err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	if err := r.applyThrough(last); err != nil {
		return 0, err
	}
	return last, nil
}

// Commit is the highest committed (= durable) offset.
func (r *Replicator) Commit() eventlog.Offset { return r.log.Last() }

// applyThrough applies every record up to and including last that is not yet
// applied. Concurrent proposers wait for each other here, which keeps applying
// in offset order while each group commit applies in one pass.
func (r *Replicator) applyThrough(last eventlog.Offset) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.applied < last {
		recs, err := r.log.Read(r.applied+1, readBatchBytes)
		if err != nil {
			return fmt.Errorf("read committed records from %d: %w", r.applied+1, err)
		}
		if len(recs) == 0 {
			return fmt.Errorf("log ends before offset %d", r.applied+1)
		}
		if recs[0].Offset != r.applied+1 {
			panic(fmt.Sprintf("standalone: read from %d returned offset %d", r.applied+1, recs[0].Offset))
		}
		if err := r.sm.Apply(recs); err != nil {
			return fmt.Errorf("apply offsets %d-%d: %w", recs[0].Offset, recs[len(recs)-1].Offset, err)
		}
		r.applied = recs[len(recs)-1].Offset
	}
	return nil
}
