package eventlog_test

// GroupCommitter: concurrent appenders share log appends (fewer syncs than
// appends), batches stay within their bounds, offsets are assigned densely,
// and every waiter of a failed batch sees the failure. testing/synctest makes
// "everyone is queued" observable without sleeping: a gated log holds each
// batch until the test has seen every goroutine block.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
)

// gatedLog passes appends to a MemoryLog one at a time, each when the test
// sends on gate, and records batch sizes. fail, if set, is returned instead
// of appending for the batch with that index.
type gatedLog struct {
	*eventlog.MemoryLog
	gate    chan struct{}
	mu      sync.Mutex
	batches []int
	fail    map[int]error
}

func newGatedLog() *gatedLog {
	return &gatedLog{MemoryLog: eventlog.NewMemoryLog(), gate: make(chan struct{})}
}

func (g *gatedLog) Append(recs []eventlog.Record) error {
	<-g.gate
	g.mu.Lock()
	i := len(g.batches)
	g.batches = append(g.batches, len(recs))
	err := g.fail[i]
	g.mu.Unlock()
	if err != nil {
		return err
	}
	return g.MemoryLog.Append(recs)
}

// drive releases batches until every appender has finished.
func drive(log *gatedLog, finished *atomic.Int64, appenders int64) {
	for {
		synctest.Wait()
		if finished.Load() == appenders {
			return
		}
		log.gate <- struct{}{}
	}
}

func startGroup(t *testing.T, log eventlog.AppendLog, opts eventlog.GroupOptions) (*eventlog.GroupCommitter, func()) {
	g := eventlog.NewGroupCommitter(log, opts)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	return g, func() {
		cancel()
		assert.NoError(t, <-done)
	}
}

func TestGroupCommitter_SharesSyncs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const appenders, perAppender = 64, 10
		log := newGatedLog()
		g, stop := startGroup(t, log, eventlog.GroupOptions{})
		defer stop()

		var finished atomic.Int64
		lasts := make(chan eventlog.Offset, appenders*perAppender)
		for a := range appenders {
			go func() {
				defer finished.Add(1)
				for i := range perAppender {
					recs := []eventlog.Record{{Epoch: 1, Type: "t", Seq: uint64(i), ClientID: string(rune('A' + a))}}
					last, err := g.Append(t.Context(), recs)
					if !assert.NoError(t, err) {
						return
					}
					assert.Equal(t, last, recs[0].Offset, "Append reports the offset it assigned")
					lasts <- last
				}
			}()
		}
		drive(log, &finished, appenders)
		close(lasts)

		st := g.Stats()
		assert.Equal(t, uint64(appenders*perAppender), st.Appends)
		assert.Equal(t, uint64(appenders*perAppender), st.Records)
		// Every round, all appenders but the one being written are queued:
		// about perAppender+1 rounds, never one sync per append.
		assert.LessOrEqual(t, st.Syncs, uint64(3*perAppender), "syncs %d for %d appends", st.Syncs, st.Appends)
		assert.Equal(t, eventlog.Offset(appenders*perAppender), log.Last())

		seen := map[eventlog.Offset]bool{}
		for off := range lasts {
			assert.False(t, seen[off], "offset %d given twice", off)
			seen[off] = true
		}
		assert.Len(t, seen, appenders*perAppender)
	})
}

func TestGroupCommitter_BoundsBatches(t *testing.T) {
	tests := []struct {
		name     string
		opts     eventlog.GroupOptions
		recs     int // records per Append
		dataSize int
		maxBatch int // records
	}{
		{"max records", eventlog.GroupOptions{MaxRecords: 10}, 3, 1, 10},
		{"max bytes", eventlog.GroupOptions{MaxBytes: 1000}, 1, 200, 4}, // 200+33 bytes each
		{"oversized request goes alone", eventlog.GroupOptions{MaxRecords: 2}, 5, 1, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const appenders = 20
				log := newGatedLog()
				g, stop := startGroup(t, log, tt.opts)
				defer stop()
				var finished atomic.Int64
				for range appenders {
					go func() {
						defer finished.Add(1)
						recs := make([]eventlog.Record, tt.recs)
						for i := range recs {
							recs[i] = eventlog.Record{Epoch: 1, Type: "t", Data: make([]byte, tt.dataSize)}
						}
						last, err := g.Append(t.Context(), recs)
						assert.NoError(t, err)
						for i, r := range recs {
							assert.Equal(t, last-eventlog.Offset(len(recs)-1-i), r.Offset, "consecutive offsets")
						}
					}()
				}
				drive(log, &finished, appenders)
				assert.Equal(t, eventlog.Offset(appenders*tt.recs), log.Last())
				for i, n := range log.batches {
					assert.LessOrEqual(t, n, tt.maxBatch, "batch %d", i)
				}
				if tt.recs > tt.opts.MaxRecords && tt.opts.MaxRecords > 0 {
					assert.Len(t, log.batches, appenders, "each oversized request alone")
					return
				}
				assert.Greater(t, len(log.batches), 1, "the bound split the work")
				assert.Less(t, len(log.batches), appenders, "requests were still batched")
			})
		})
	}
}

func TestGroupCommitter_ErrorGoesToEveryWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const appenders = 8
		boom := errors.New("disk on fire")
		log := newGatedLog()
		log.fail = map[int]error{1: boom} // the second batch fails
		g, stop := startGroup(t, log, eventlog.GroupOptions{})
		defer stop()

		var finished atomic.Int64
		errs := make(chan error, appenders)
		for i := range appenders {
			go func() {
				defer finished.Add(1)
				_, err := g.Append(t.Context(), []eventlog.Record{{Epoch: 1, Type: "t"}})
				errs <- err
			}()
			if i == 0 {
				synctest.Wait() // the first batch holds this request alone
			}
		}
		drive(log, &finished, appenders)
		close(errs)
		var failed, ok int
		for err := range errs {
			if err == nil {
				ok++
				continue
			}
			failed++
			assert.ErrorIs(t, err, boom)
		}
		// The first batch took one request; the rest queued and failed together.
		assert.Equal(t, 1, ok)
		assert.Equal(t, appenders-1, failed)
		assert.Equal(t, uint64(2), g.Stats().Syncs)
		assert.Equal(t, eventlog.Offset(1), log.Last())

		// The committer keeps working, and offsets continue from the log.
		go func() {
			defer finished.Add(1)
			last, err := g.Append(t.Context(), []eventlog.Record{{Epoch: 1, Type: "t"}})
			assert.NoError(t, err)
			assert.Equal(t, eventlog.Offset(2), last)
		}()
		drive(log, &finished, appenders+1)
	})
}

func TestGroupCommitter_BadEpochFailsOnlyItsCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newGatedLog()
		g, stop := startGroup(t, log, eventlog.GroupOptions{})
		defer stop()
		var finished atomic.Int64
		results := make(chan error, 4)
		for _, epoch := range []eventlog.Epoch{5, 5, 3, 6} {
			go func() {
				defer finished.Add(1)
				_, err := g.Append(t.Context(), []eventlog.Record{{Epoch: epoch, Type: "t"}})
				results <- err
			}()
			synctest.Wait() // queue in this order
		}
		drive(log, &finished, 4)
		close(results)
		var errs []error
		for err := range results {
			if err != nil {
				errs = append(errs, err)
			}
		}
		require.Len(t, errs, 1)
		assert.ErrorIs(t, errs[0], eventlog.ErrNotContiguous)
		assert.Equal(t, eventlog.Offset(3), log.Last())
		assert.Equal(t, eventlog.Epoch(6), log.LastEpoch())
	})
}

func TestGroupCommitter_CancelAndStop(t *testing.T) {
	log := eventlog.NewMemoryLog()
	g := eventlog.NewGroupCommitter(log, eventlog.GroupOptions{})

	_, err := g.Append(t.Context(), nil)
	assert.ErrorIs(t, err, eventlog.ErrNotContiguous, "no records")

	// Not running yet: a done context withdraws the request.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = g.Append(ctx, []eventlog.Record{{Epoch: 1}})
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, eventlog.Offset(0), log.Last(), "nothing written")

	runCtx, stopRun := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- g.Run(runCtx) }()
	last, err := g.Append(t.Context(), []eventlog.Record{{Epoch: 1}, {Epoch: 1}})
	require.NoError(t, err)
	assert.Equal(t, eventlog.Offset(2), last)
	assert.Error(t, g.Run(t.Context()), "Run twice")

	stopRun()
	require.NoError(t, <-done)
	_, err = g.Append(t.Context(), []eventlog.Record{{Epoch: 1}})
	assert.ErrorIs(t, err, eventlog.ErrStopped)
}
