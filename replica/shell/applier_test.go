package shell

import (
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
	a := newApplier(log, sm, 0)
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
	assert.ErrorIs(t, (<-imposter.done).err, ErrLost, "another request's record at the offset is not a success")
}

func TestApplier_TruncationBelowAppliedResetsAndReplays(t *testing.T) {
	log := eventlog.NewMemoryLog()
	sm := &listSM{}
	appendN(t, log, 10, "c")
	a := newApplier(log, sm, 0)
	go a.run()
	defer a.close()
	a.advance(8)
	waitApplied(t, a, 8)
	pending := &proposal{clientID: "c", seq: 10, done: make(chan proposalResult, 1)}
	a.wait(10, pending)

	require.NoError(t, log.Truncate(5))
	reset, err := a.truncated(5)
	require.NoError(t, err)
	assert.True(t, reset, "the state applied beyond the cut is rebuilt")
	assert.ErrorIs(t, (<-pending.done).err, ErrLost)
	assert.Equal(t, eventlog.Offset(0), a.appliedOffset())

	a.advance(5)
	waitApplied(t, a, 5)
	require.Len(t, sm.recs, 5)
	assert.Equal(t, eventlog.Offset(5), sm.recs[4].Offset, "replayed from the start, in order")

	// A truncation above what was applied needs no reset.
	appendN(t, log, 3, "d")
	reset, err = a.truncated(6)
	require.NoError(t, err)
	assert.False(t, reset)
}

func TestApplier_StateMachineErrorStops(t *testing.T) {
	log := eventlog.NewMemoryLog()
	sm := &listSM{recs: []eventlog.Record{{Offset: 1}}} // claims offset 1 applied: the next apply is a gap
	appendN(t, log, 3, "c")
	a := newApplier(log, sm, 0)
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
	a := newApplier(log, sm, 0)
	applied, err := a.applyBatch(1, 600)
	require.NoError(t, err)
	require.Len(t, applied, 600)
	assert.Equal(t, eventlog.Offset(600), applied[len(applied)-1].Offset)
	assert.Equal(t, []int{256, 256, 88}, sm.sizes, "one state transaction per chunk of at most applyChunkRecords")
	assert.Len(t, sm.recs, 600)
}
