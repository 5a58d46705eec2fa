package eventlog

import (
	"context"
	"fmt"
	"sync/atomic"
)

// AppendLog is what a GroupCommitter needs from a log.
type AppendLog interface {
	Append(recs []Record) error
	Last() Offset
	LastEpoch() Epoch
}

// GroupOptions bounds the batches of a GroupCommitter. Zero values pick the
// defaults.
type GroupOptions struct {
	// MaxRecords is the most records one batch holds; 0 means 1024.
	MaxRecords int
	// MaxBytes is the most payload bytes (Type, ClientID and Data, plus a
	// small per-record allowance) one batch holds; 0 means 1 MiB. Keep it
	// well under the log's transaction limit (BadgerOptions.MemTableSize)
	// so that a batch is one transaction.
	MaxBytes int
}

// GroupStats counts what a GroupCommitter has done.
type GroupStats struct {
	// Appends is the number of GroupCommitter.Append calls answered
	// (successfully or not) by a log append.
	Appends uint64
	// Records is the number of records handed to the log.
	Records uint64
	// Syncs is the number of log appends, each one durable write.
	Syncs uint64
}

// GroupCommitter lets concurrent appenders share one log Append, and so one
// sync: while a batch is being written, new requests queue up and go
// together in the next one. It assigns offsets itself, so callers need not
// coordinate.
//
// Run is the single goroutine that writes to the log; while it runs, nothing
// else may append to that log.
type GroupCommitter struct {
	log  AppendLog
	opts GroupOptions
	// reqs is unbuffered: a request is either taken by Run (and then
	// always answered) or still the caller's to withdraw.
	reqs    chan *groupRequest
	stopped chan struct{} // closed when Run returns
	running atomic.Bool
	appends atomic.Uint64
	records atomic.Uint64
	syncs   atomic.Uint64
}

type groupRequest struct {
	recs []Record
	size int
	last Offset     // set by Run before done is sent
	done chan error // buffered, 1
}

// NewGroupCommitter returns a committer appending to log. Call Run to start it.
func NewGroupCommitter(log AppendLog, opts GroupOptions) *GroupCommitter {
	if opts.MaxRecords <= 0 {
		opts.MaxRecords = 1024
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 20
	}
	return &GroupCommitter{
		log:     log,
		opts:    opts,
		reqs:    make(chan *groupRequest),
		stopped: make(chan struct{}),
	}
}

// Stats returns the counters so far; safe to call at any time.
func (g *GroupCommitter) Stats() GroupStats {
	return GroupStats{Appends: g.appends.Load(), Records: g.records.Load(), Syncs: g.syncs.Load()}
}

// Append appends recs durably and returns the offset of the last one. It
// assigns consecutive offsets, overwriting recs[i].Offset; the caller sets
// every other field, and must not touch recs until Append returns. The
// records' epochs must not decrease, nor be below the log's last epoch
// (ErrNotContiguous otherwise, for this call only).
//
// If ctx is done before Run takes the request, Append returns ctx.Err() and
// nothing is written. Once taken, the request is written and Append waits for
// the outcome: the error of the batch's log append, if any, goes to every
// caller in the batch. After Run has returned, Append returns ErrStopped.
func (g *GroupCommitter) Append(ctx context.Context, recs []Record) (Offset, error) {
	if len(recs) == 0 {
		return 0, fmt.Errorf("group append no records: %w", ErrNotContiguous)
	}
	req := &groupRequest{recs: recs, size: batchSize(recs), done: make(chan error, 1)}
	select {
	case g.reqs <- req:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-g.stopped:
		return 0, fmt.Errorf("group append: %w", ErrStopped)
	}
	if err := <-req.done; err != nil {
		return 0, err
	}
	return req.last, nil
}

// batchSize estimates the bytes recs add to a batch.
func batchSize(recs []Record) int {
	n := 0
	for _, r := range recs {
		n += len(r.Type) + len(r.ClientID) + len(r.Data) + 32
	}
	return n
}

// Run writes batches until ctx is done, then returns nil. It may be called
// only once.
func (g *GroupCommitter) Run(ctx context.Context) error {
	if !g.running.CompareAndSwap(false, true) {
		return fmt.Errorf("group committer: Run called twice")
	}
	defer close(g.stopped)
	var carry *groupRequest // taken from reqs, but did not fit the last batch
	defer func() {
		if carry != nil {
			carry.done <- fmt.Errorf("group append: %w", ErrStopped)
		}
	}()
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case <-ctx.Done():
				return nil
			case first = <-g.reqs:
			}
		}
		batch := []*groupRequest{first}
		n, size := len(first.recs), first.size
	drain:
		for n < g.opts.MaxRecords && size < g.opts.MaxBytes {
			select {
			case r := <-g.reqs:
				if n+len(r.recs) > g.opts.MaxRecords || size+r.size > g.opts.MaxBytes {
					carry = r
					break drain
				}
				batch = append(batch, r)
				n, size = n+len(r.recs), size+r.size
			default:
				break drain
			}
		}
		g.commit(batch, n)
	}
}

// commit assigns offsets to the requests of batch, appends them in one log
// Append and answers every request.
func (g *GroupCommitter) commit(batch []*groupRequest, n int) {
	next, epoch := g.log.Last()+1, g.log.LastEpoch()
	all := make([]Record, 0, n)
	accepted := batch[:0]
	for _, r := range batch {
		// Check epochs per request, so that one bad caller does not fail
		// the others of its batch.
		e := epoch
		var err error
		for _, rec := range r.recs {
			if rec.Epoch < e {
				err = fmt.Errorf("group append: epoch %d below %d: %w", rec.Epoch, e, ErrNotContiguous)
				break
			}
			e = rec.Epoch
		}
		if err != nil {
			r.done <- err
			continue
		}
		epoch = e
		for i := range r.recs {
			r.recs[i].Offset = next
			next++
		}
		r.last = next - 1
		all = append(all, r.recs...)
		accepted = append(accepted, r)
	}
	if len(accepted) == 0 {
		return
	}
	err := g.log.Append(all)
	g.syncs.Add(1)
	g.appends.Add(uint64(len(accepted)))
	g.records.Add(uint64(len(all)))
	if err != nil {
		err = fmt.Errorf("group append %d records from %d: %w", len(all), all[0].Offset, err)
	}
	for _, r := range accepted {
		r.done <- err
	}
}
