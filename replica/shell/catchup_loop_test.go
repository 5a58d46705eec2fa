package shell

import (
	"context"
	crand "crypto/rand"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
	"github.com/replichat/replichat/replica/transport"
)

// appendFrom returns the primary 0's Append to backup 1 of n records after
// prev, each carrying a payload of size bytes, in epoch 1.
func appendFrom(t *testing.T, prev eventlog.Offset, n, size int, commit eventlog.Offset, extra ...eventlog.Record) []byte {
	t.Helper()
	m := replica.Message{Type: replica.MsgAppend, From: 0, To: 1, Epoch: 1, Role: replica.RolePrimary,
		Prev: prev, Commit: commit}
	if prev > 0 {
		m.PrevEpoch = 1
	}
	for i := range n {
		m.Records = append(m.Records, eventlog.Record{Offset: prev + 1 + eventlog.Offset(i), Epoch: 1,
			Type: "test.op", Data: make([]byte, size)})
	}
	for _, r := range extra {
		r.Offset, r.Epoch = prev+eventlog.Offset(len(m.Records))+1, 1
		m.Records = append(m.Records, r)
	}
	b, err := replica.EncodeMessage(m)
	require.NoError(t, err)
	return b
}

// sizedLog records the number of records of every Append.
type sizedLog struct {
	*eventlog.MemoryLog
	appends *[]int
}

func (l sizedLog) Append(recs []eventlog.Record) error {
	*l.appends = append(*l.appends, len(recs))
	return l.MemoryLog.Append(recs)
}

// Write counts the records of a Ready written as one batch.
func (l sizedLog) Write(b eventlog.Batch) error {
	if len(b.Records) > 0 {
		*l.appends = append(*l.appends, len(b.Records))
	}
	return l.MemoryLog.Write(b)
}

type inboxTransport struct{ in chan transport.Inbound }

func (inboxTransport) Send(transport.NodeID, []byte) bool { return true }
func (t inboxTransport) Inbox() <-chan transport.Inbound  { return t.in }

// A backup finding a window of Appends waiting persists them in bounded
// iterations (about maxDrainBytes each) rather than in one long Ready that
// would stop its clock, yet still shares one write among several Appends.
func TestShell_DrainIsBoundedByBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			msgs    = 12
			perMsg  = 100
			recSize = 2 << 10 // ~200 KiB per message
		)
		in := make(chan transport.Inbound, msgs)
		var msgBytes int
		for k := range msgs {
			b := appendFrom(t, eventlog.Offset(k*perMsg), perMsg, recSize, 0)
			msgBytes = len(b)
			in <- transport.Inbound{From: 0, Msg: b}
		}
		var appends []int
		mem := eventlog.NewMemoryLog()
		s, err := New(Config{Node: replica.Config{ID: 1, Peers: []replica.NodeID{0, 1}, HeartbeatTicks: 2, FailoverTicks: 20},
			Log: sizedLog{MemoryLog: mem, appends: &appends}, StateMachine: &listSM{}, Transport: inboxTransport{in}})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		synctest.Wait()
		cancel()
		require.NoError(t, <-done)

		require.Equal(t, eventlog.Offset(msgs*perMsg), mem.Last(), "every Append persisted")
		perIteration := (maxDrainBytes/msgBytes + 1) * perMsg
		require.Greater(t, perIteration, perMsg, "the test needs several messages per iteration")
		assert.Greater(t, len(appends), 1, "split over several iterations")
		for i, n := range appends {
			assert.LessOrEqual(t, n, perIteration, "append %d", i)
		}
		assert.Equal(t, perIteration, appends[0], "an iteration takes messages up to the bound")
	})
}

// A restarted backup catching up (recovering) hands its commit to the
// applier only once a primary records it in the ISR again: appending the
// log, which decides when it is in sync, does not share the CPU with
// applying.
func TestShell_RecoveringBackupAppliesOnceInSync(t *testing.T) {
	mem := eventlog.NewMemoryLog()
	s, err := New(Config{Node: replica.Config{ID: 1, Peers: []replica.NodeID{0, 1}, HeartbeatTicks: 2, FailoverTicks: 20},
		Log: mem, StateMachine: &listSM{}, Transport: journalTransport{&journal{}}})
	require.NoError(t, err)
	s.ap = newApplier(mem, s.sm, 0, nil) // not running: only its target is checked
	_, _, err = replica.EnsureIdentity(mem, 1, crand.Reader)
	require.NoError(t, err)
	s.node, err = replica.NewNode(s.cfg.Node, mem)
	require.NoError(t, err)
	s.applyHeld = holdApply(s.node.Status())
	iterate := func(msg []byte) {
		t.Helper()
		s.step(t.Context(), transport.Inbound{From: 0, Msg: msg})
		for s.node.HasReady() {
			require.NoError(t, s.handleReady(t.Context()))
		}
		s.afterIteration()
	}
	target := func() eventlog.Offset {
		s.ap.mu.Lock()
		defer s.ap.mu.Unlock()
		return s.ap.target
	}
	require.True(t, s.applyHeld, "a restarted backup starts recovering")

	iterate(appendFrom(t, 0, 10, 8, 10))
	require.Equal(t, eventlog.Offset(10), s.node.Status().Commit)
	assert.True(t, s.Status().Recovering)
	assert.Equal(t, eventlog.Offset(0), target(), "held while recovering")

	isr := eventlog.Record{Type: replica.TypeISR, Data: mustISR(t, replica.ISRChange{Members: []replica.ISRMember{
		{ID: 0, Incarnation: 1}, {ID: 1, Incarnation: 1, Disk: s.node.Status().Identity.Disk}}})}
	iterate(appendFrom(t, 10, 5, 8, 15, isr))
	require.False(t, s.Status().Recovering, "the ISR record naming its incarnation ends recovery")
	assert.Equal(t, eventlog.Offset(15), target(), "released once in sync")

	iterate(appendFrom(t, 16, 2, 8, 18))
	assert.Equal(t, eventlog.Offset(18), target(), "in sync, the commit goes straight to the applier")
}

func mustISR(t *testing.T, c replica.ISRChange) []byte {
	t.Helper()
	b, err := msgpack.Marshal(&c)
	require.NoError(t, err)
	return b
}
