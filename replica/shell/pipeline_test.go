package shell

import (
	crand "crypto/rand"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
	"github.com/replichat/replichat/replica/transport"
)

// journal records, in order, the log writes and the sends of one shell.
type journal struct{ events []string }

type journalLog struct {
	*eventlog.MemoryLog
	j *journal
}

func (l journalLog) Append(recs []eventlog.Record) error {
	l.j.events = append(l.j.events, fmt.Sprintf("append %d-%d", recs[0].Offset, recs[len(recs)-1].Offset))
	return l.MemoryLog.Append(recs)
}

// Write journals a Ready written as one batch by its records.
func (l journalLog) Write(b eventlog.Batch) error {
	if recs := b.Records; len(recs) > 0 {
		l.j.events = append(l.j.events, fmt.Sprintf("append %d-%d", recs[0].Offset, recs[len(recs)-1].Offset))
	}
	return l.MemoryLog.Write(b)
}

type journalTransport struct{ j *journal }

func (t journalTransport) Send(to transport.NodeID, b []byte) bool {
	m, err := replica.DecodeMessage(b)
	if err != nil {
		panic(err)
	}
	e := fmt.Sprintf("send %s to %d", m.Type, to)
	if m.Type == replica.MsgAppend && len(m.Records) > 0 {
		e += fmt.Sprintf(" %d-%d", m.Records[0].Offset, m.Records[len(m.Records)-1].Offset)
	}
	t.j.events = append(t.j.events, e)
	return true
}

func (journalTransport) Inbox() <-chan transport.Inbound { return nil }

// The primary's Appends leave before its own write of the same records (the
// overlap of the primary's fsync with the backups'), everything proposed in
// one iteration shares one Append per backup, and a backup's acknowledgement
// is a lag sample stamped when it was stepped.
func TestShell_SendsAppendsBeforeItsOwnWrite(t *testing.T) {
	j := &journal{}
	mem := eventlog.NewMemoryLog()
	log := journalLog{MemoryLog: mem, j: j}
	s, err := New(Config{Node: replica.Config{ID: 0, Peers: []replica.NodeID{0, 1}, HeartbeatTicks: 2, FailoverTicks: 20},
		Log: log, StateMachine: &listSM{}, Transport: journalTransport{j}})
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
	require.NoError(t, s.node.Step(replica.Message{Type: replica.MsgFetch, From: 1, To: 0, Epoch: epoch}))
	ready()
	ack := func(last eventlog.Offset) {
		t.Helper()
		b, err := replica.EncodeMessage(replica.Message{Type: replica.MsgAppendResp, From: 1, To: 0, Epoch: epoch, LastOffset: last})
		require.NoError(t, err)
		s.step(t.Context(), transport.Inbound{From: 1, Msg: b})
	}
	ack(mem.Last())
	ready()
	ack(mem.Last()) // acknowledges the ISR record adding 1
	ready()
	require.Equal(t, []replica.NodeID{0, 1}, s.node.Status().ISR)

	j.events = nil
	first := mem.Last() + 1
	for seq := range uint64(3) {
		s.propose(&proposal{recs: []eventlog.Record{{Type: "test.op", ClientID: "c", Seq: seq + 1}}, clientID: "c", seq: seq + 1,
			done: make(chan proposalResult, 1)})
	}
	ready()
	want := fmt.Sprintf("%d-%d", first, first+2)
	require.GreaterOrEqual(t, len(j.events), 2)
	assert.Equal(t, []string{"send append to 1 " + want, "append " + want}, j.events[:2])

	ack(first + 2)
	samples, _, _ := s.LagSamples(0, 100)
	var offs []uint64
	for _, smp := range samples {
		assert.GreaterOrEqual(t, smp.DurableAt, smp.AppendedAt)
		assert.Equal(t, uint32(1), smp.Replica)
		offs = append(offs, smp.Offset)
	}
	assert.Subset(t, offs, []uint64{uint64(first), uint64(first + 1), uint64(first + 2)},
		"the acknowledgement is sampled as soon as it is stepped")
}
