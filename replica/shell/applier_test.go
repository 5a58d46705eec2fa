package shell

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
)

func appendN(t *testing.T, log *eventlog.MemoryLog, n int, client string) {
	t.Helper()
	recs := make([]eventlog.Record, n)
	for i := range recs {
		recs[i] = eventlog.Record{Offset: log.Last() + 1 + eventlog.Offset(i), Epoch: 1, Type: "test.op", ClientID: client, Seq: uint64(log.Last()) + 1 + uint64(i)}
	}
	require.NoError(t, log.Append(recs))
}

func waitApplied(t *testing.T, a *applier, want eventlog.Offset) {
	t.Helper()
	require.Eventually(t, func() bool { return a.appliedOffset() == want }, 5*time.Second, time.Millisecond)
}

func TestApplier_AppliesUpToTargetAndSettles(t *testing.T) {
	log := eventlog.NewMemoryLog()
	sm := &listSM{}
	appendN(t, log, 10, "c")
	a := newApplier(log, sm, 0, nil)
	go a.run()
	defer a.close()

	ok := &proposal{clientID: "c", seq: 4, done: make(chan proposalResult, 1)}
	imposter := &proposal{clientID: "other", seq: 6, done: make(chan proposalResult, 1)}
	a.wait(4, ok)
	a.wait(6, imposter)
	a.advance(7)
	waitApplied(t, a, 7)
	assert.Len(t, sm.recs, 7, "nothing beyond the target is applied")
	assert.Equal(t, proposalResult{last: 4}, <-ok.done)
	assert.ErrorIs(t, (<-imposter.done).err, ErrOutcomeUnknown, "another request's record at the offset is not a success")
}

func TestApplier_TruncationBelowAppliedResetsAndReplays(t *testing.T) {
	log := eventlog.NewMemoryLog()
	sm := &listSM{}
	appendN(t, log, 10, "c")
	a := newApplier(log, sm, 0, nil)
	go a.run()
	defer a.close()
	a.advance(8)
	waitApplied(t, a, 8)
	pending := &proposal{clientID: "c", seq: 10, done: make(chan proposalResult, 1)}
	a.wait(10, pending)

	require.True(t, a.truncated(5), "the state applied beyond the cut must be rolled back")
	require.NoError(t, log.Truncate(5))
	assert.ErrorIs(t, (<-pending.done).err, ErrOutcomeUnknown, "a truncated proposal may be re-submitted")
	// No undo history: reset, then replayed up to the (lowered) target.
	waitApplied(t, a, 5)
	assert.True(t, a.takeRolledBack())
	sm.mu.Lock()
	require.Len(t, sm.recs, 5)
	assert.Equal(t, eventlog.Offset(5), sm.recs[4].Offset, "replayed from the start, in order")
	sm.mu.Unlock()

	// A truncation above what was applied needs no rollback.
	appendN(t, log, 3, "d")
	assert.False(t, a.truncated(6))
	assert.False(t, a.takeRolledBack())
}

// undoSM is a listSM with undo history from offset keep on (a Rollbacker).
// RollbackTo blocks while gate is set, until it is closed.
type undoSM struct {
	listSM
	keep      eventlog.Offset
	gate      chan struct{}
	stable    []eventlog.Offset
	rollbacks []eventlog.Offset
}

func (m *undoSM) RollbackTo(after eventlog.Offset) (eventlog.Offset, error) {
	if m.gate != nil {
		<-m.gate
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if after < m.keep {
		return 0, fmt.Errorf("undo history starts after %d", m.keep)
	}
	m.rollbacks = append(m.rollbacks, after)
	m.recs = m.recs[:min(int(after), len(m.recs))]
	return eventlog.Offset(len(m.recs)), nil
}

func (m *undoSM) SetStable(off eventlog.Offset) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stable = append(m.stable, off)
}

// A state machine with undo history is rolled back, not rebuilt: only the
// truncated records are applied again. The rollback runs on the applier's
// goroutine: a truncation does not wait for it, and reads wait until the
// state is rolled back and caught up.
func TestApplier_RollbackByUndoDoesNotBlockTheLoop(t *testing.T) {
	log := eventlog.NewMemoryLog()
	sm := &undoSM{keep: 3, gate: make(chan struct{})}
	appendN(t, log, 10, "c")
	a := newApplier(log, sm, 0, nil)
	go a.run()
	defer a.close()
	a.setStable(2)
	a.advance(10)
	waitApplied(t, a, 10)

	done := make(chan bool)
	go func() { done <- a.truncated(6) }()
	select {
	case rolling := <-done:
		require.True(t, rolling)
	case <-time.After(5 * time.Second):
		t.Fatal("truncated waited for the rollback")
	}
	require.NoError(t, log.Truncate(6))
	appendN(t, log, 2, "new")
	a.advance(8)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, a.waitApplied(ctx, 8), context.DeadlineExceeded, "reads wait while the rollback runs")
	assert.False(t, a.takeRolledBack(), "still running")
	close(sm.gate)
	require.NoError(t, a.waitApplied(t.Context(), 8))
	assert.True(t, a.takeRolledBack())
	sm.mu.Lock()
	defer sm.mu.Unlock()
	assert.Equal(t, []eventlog.Offset{6}, sm.rollbacks)
	require.Len(t, sm.recs, 8)
	assert.Equal(t, "new", sm.recs[7].ClientID, "the new suffix is applied on the rolled-back state")
	assert.Equal(t, []eventlog.Offset{2}, sm.stable, "the stable offset reached the state machine before a batch")
}

// When the undo history does not reach back, the applier resets and replays.
func TestApplier_RollbackFallsBackToReset(t *testing.T) {
	log := eventlog.NewMemoryLog()
	sm := &undoSM{keep: 8}
	appendN(t, log, 10, "c")
	a := newApplier(log, sm, 0, nil)
	go a.run()
	defer a.close()
	a.advance(10)
	waitApplied(t, a, 10)
	require.True(t, a.truncated(4))
	require.NoError(t, log.Truncate(4))
	a.advance(4)
	require.NoError(t, a.waitApplied(t.Context(), 4))
	sm.mu.Lock()
	defer sm.mu.Unlock()
	assert.Empty(t, sm.rollbacks)
	assert.Len(t, sm.recs, 4, "reset, then replayed from 1")
}

// A truncation stops the batch in progress after its current chunk rather
// than waiting for the whole batch.
func TestApplier_TruncationStopsTheBatchInProgress(t *testing.T) {
	log := eventlog.NewMemoryLog()
	sm := &chunkSM{}
	appendN(t, log, 600, "c")
	a := newApplier(log, sm, 0, nil)
	a.stopBatch.Store(true)
	applied, err := a.applyBatch(1, 600)
	require.NoError(t, err)
	assert.Len(t, applied, 256, "one chunk, then it stops")
}

func TestApplier_StateMachineErrorStops(t *testing.T) {
	log := eventlog.NewMemoryLog()
	sm := &listSM{recs: []eventlog.Record{{Offset: 1}}} // claims offset 1 applied: the next apply is a gap
	appendN(t, log, 3, "c")
	a := newApplier(log, sm, 0, nil)
	go a.run()
	defer a.close()
	a.advance(3)
	select {
	case <-a.failed:
		assert.ErrorContains(t, a.err, "apply offsets 1-3")
	case <-time.After(5 * time.Second):
		t.Fatal("an apply error must stop the applier")
	}
}

// chunkSM records the size of every Apply call.
type chunkSM struct {
	listSM
	sizes []int
}

func (m *chunkSM) Apply(recs []eventlog.Record) error {
	m.sizes = append(m.sizes, len(recs))
	return m.listSM.Apply(recs)
}

func TestApplier_AppliesInBoundedChunks(t *testing.T) {
	log := eventlog.NewMemoryLog()
	sm := &chunkSM{}
	appendN(t, log, 600, "c")
	a := newApplier(log, sm, 0, nil)
	applied, err := a.applyBatch(1, 600)
	require.NoError(t, err)
	require.Len(t, applied, 600)
	assert.Equal(t, eventlog.Offset(600), applied[len(applied)-1].Offset)
	assert.Equal(t, []int{256, 256, 88}, sm.sizes, "one state transaction per chunk of at most applyChunkRecords")
	assert.Len(t, sm.recs, 600)
}
