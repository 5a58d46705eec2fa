package shell

// Config.ObserveLag sees every lag sample as it is taken, the same samples
// the ring hands to readers, including those the ring overwrote before any
// reader fetched them.

import (
	crand "crypto/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
	"github.com/replichat/replichat/replica/transport"
)

func TestShell_ObserveLagSeesEverySample(t *testing.T) {
	var observed []LagSample
	s, err := New(Config{
		Node:         replica.Config{ID: 0, Peers: []replica.NodeID{0, 1}, HeartbeatTicks: 2, FailoverTicks: 20},
		Log:          eventlog.NewMemoryLog(),
		StateMachine: &listSM{},
		Transport:    NoTransport{},
		LagSamples:   4,
		ObserveLag:   func(smp LagSample) { observed = append(observed, smp) },
	})
	require.NoError(t, err)
	for off := uint64(1); off <= 6; off++ {
		s.lag.add(1, off, int64(off*10), int64(off*10+3))
	}
	require.Len(t, observed, 6, "every sample, also those the 4-sample ring overwrote")
	for i, smp := range observed {
		off := uint64(i + 1)
		assert.Equal(t, LagSample{Seq: off, Offset: off, Replica: 1, AppendedAt: int64(off * 10), DurableAt: int64(off*10 + 3)}, smp)
	}
	got, _, dropped := s.LagSamples(0, 10)
	assert.Equal(t, observed[2:], got, "the ring keeps the newest, as observed")
	assert.Equal(t, uint64(2), dropped, "observing does not count as reading the ring")
}

// The loop's sampling path (an acknowledgement stepped on the primary)
// reaches the observer, once per offset the acknowledgement covers.
func TestShell_ObserveLagFromAcknowledgements(t *testing.T) {
	var observed []LagSample
	log := eventlog.NewMemoryLog()
	s, err := New(Config{Node: replica.Config{ID: 0, Peers: []replica.NodeID{0, 1}, HeartbeatTicks: 2, FailoverTicks: 20},
		Log: log, StateMachine: &listSM{}, Transport: journalTransport{&journal{}},
		ObserveLag: func(smp LagSample) { observed = append(observed, smp) }})
	require.NoError(t, err)
	s.ap = newApplier(log, s.sm, 0, nil) // not running: nothing here waits for it
	_, _, err = replica.EnsureIdentity(log, 0, crand.Reader)
	require.NoError(t, err)
	s.node, err = replica.NewNode(s.cfg.Node, log)
	require.NoError(t, err)
	ready := func() {
		t.Helper()
		for s.node.HasReady() {
			require.NoError(t, s.handleReady(t.Context()))
		}
		s.afterIteration()
	}
	ready()
	require.NoError(t, s.node.ForceLead())
	ready()
	epoch := s.node.Status().Epoch
	ack := func(last eventlog.Offset) {
		t.Helper()
		b, err := replica.EncodeMessage(replica.Message{Type: replica.MsgAppendResp, From: 1, To: 0, Epoch: epoch, LastOffset: last})
		require.NoError(t, err)
		s.step(t.Context(), transport.Inbound{From: 1, Msg: b})
		ready()
	}
	require.NoError(t, s.node.Step(replica.Message{Type: replica.MsgFetch, From: 1, To: 0, Epoch: epoch}))
	ready()
	ack(log.Last())
	ack(log.Last()) // acknowledges the ISR record adding 1
	require.Equal(t, []replica.NodeID{0, 1}, s.node.Status().ISR)

	observed = nil
	first := log.Last() + 1
	for seq := range uint64(3) {
		s.propose(&proposal{recs: []eventlog.Record{{Type: "test.op", ClientID: "c", Seq: seq + 1}}, clientID: "c", seq: seq + 1,
			done: make(chan proposalResult, 1)})
	}
	ready()
	ack(first + 2)
	var offs []uint64
	for _, smp := range observed {
		assert.Equal(t, uint32(1), smp.Replica)
		assert.GreaterOrEqual(t, smp.DurableAt, smp.AppendedAt)
		offs = append(offs, smp.Offset)
	}
	assert.Equal(t, []uint64{uint64(first), uint64(first + 1), uint64(first + 2)}, offs)
	ring, _, _ := s.LagSamples(0, 1000)
	assert.Equal(t, observed, ring[len(ring)-len(observed):], "the observer and the ring see the same samples")
}
