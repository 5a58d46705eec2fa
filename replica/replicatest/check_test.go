package replicatest

// The checkers must catch what they claim to: each case breaks one
// invariant by hand and expects the matching failure.

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

func newTestCluster(t *testing.T, partitions bool) *Cluster {
	t.Helper()
	c, err := NewCluster(Options{Seed: 1, Nodes: 3, Partitions: partitions,
		Config: replica.Config{HeartbeatTicks: 2, FailoverTicks: 20},
		Net:    NetworkOptions{DelayMinTicks: 1, FIFO: true}})
	require.NoError(t, err)
	c.Faults, c.Traffic = false, false
	return c
}

// mirrorAppend appends a record to a node's mirror as persist would.
func mirrorAppend(s *SimNode, r eventlog.Record) {
	var prev uint64
	if k := len(s.hashes); k > 0 {
		prev = s.hashes[k-1]
	}
	s.epochs = append(s.epochs, r.Epoch)
	s.hashes = append(s.hashes, prev*1099511628211^recordDigest(r))
}

func TestCheck_LogMatching(t *testing.T) {
	c := newTestCluster(t, false)
	a, b := &SimNode{ID: 0}, &SimNode{ID: 1}
	mirrorAppend(a, eventlog.Record{Offset: 1, Epoch: 1, Data: []byte("x")})
	mirrorAppend(b, eventlog.Record{Offset: 1, Epoch: 1, Data: []byte("x")})
	require.NoError(t, c.checkMatching(a, b))
	mirrorAppend(a, eventlog.Record{Offset: 2, Epoch: 2, Data: []byte("y")})
	mirrorAppend(b, eventlog.Record{Offset: 2, Epoch: 3, Data: []byte("z")})
	require.NoError(t, c.checkMatching(a, b), "different epochs at an offset may differ")
	a2, b2 := &SimNode{ID: 0}, &SimNode{ID: 1}
	mirrorAppend(a2, eventlog.Record{Offset: 1, Epoch: 1, Data: []byte("x")})
	mirrorAppend(b2, eventlog.Record{Offset: 1, Epoch: 1, Data: []byte("DIFFERENT")})
	assert.ErrorContains(t, c.checkMatching(a2, b2), "log matching")
}

func TestCheck_CommittedPrefixAndPhantoms(t *testing.T) {
	c := newTestCluster(t, false)
	s := c.Nodes[0]
	c.issued[ClientSeq{"c0", 1}] = true
	require.NoError(t, c.applyOne(s, eventlog.Record{Offset: 1, Epoch: 1, Type: "test.put", ClientID: "c0", Seq: 1, Data: []byte("c0-1")}))
	other := c.Nodes[1]
	err := c.applyOne(other, eventlog.Record{Offset: 1, Epoch: 2, Type: "test.put", ClientID: "c0", Seq: 1, Data: []byte("c0-1")})
	assert.ErrorContains(t, err, "differs from the cluster's committed record")

	c = newTestCluster(t, false)
	err = c.applyOne(c.Nodes[0], eventlog.Record{Offset: 1, Epoch: 1, Type: "test.put", ClientID: "c9", Seq: 1, Data: []byte("?")})
	assert.ErrorContains(t, err, "phantom")

	c = newTestCluster(t, false)
	c.issued[ClientSeq{"c0", 1}], c.issued[ClientSeq{"c0", 2}] = true, true
	require.NoError(t, c.applyOne(c.Nodes[0], eventlog.Record{Offset: 1, Epoch: 1, Type: "test.put", ClientID: "c0", Seq: 2, Data: []byte("c0-2")}))
	err = c.applyOne(c.Nodes[0], eventlog.Record{Offset: 2, Epoch: 1, Type: "test.put", ClientID: "c0", Seq: 1, Data: []byte("c0-1")})
	assert.ErrorContains(t, err, "per-client order")

	c = newTestCluster(t, false)
	c.issued[ClientSeq{"c0", 1}], c.refused[ClientSeq{"c0", 1}] = true, true
	err = c.applyOne(c.Nodes[0], eventlog.Record{Offset: 1, Epoch: 1, Type: "test.put", ClientID: "c0", Seq: 1, Data: []byte("c0-1")})
	assert.ErrorContains(t, err, "refused (a definite error)")
}

// A replaced disk that becomes eligible (or primary) without every
// committed record breaks invariant 10.
func TestCheck_WipedNodeMustCatchUpBeforeLeading(t *testing.T) {
	c := newTestCluster(t, false)
	c.committed = nil
	s := c.Nodes[0]
	c.Wipe(s.ID)
	require.NoError(t, c.Restart(s.ID))
	// The operator's override skips the rules; the checker does not.
	require.NoError(t, c.ForceLead(s.ID))
	require.False(t, s.wiped, "primary and holding everything committed: a member again")
	s.wiped = true
	c.committed = append(c.committed, 99) // committed elsewhere, not here
	assert.ErrorContains(t, c.check(s), "(disk replaced) is primary")
}

// A primary whose lease is valid on the cluster clock must hold every
// committed record.
func TestCheck_LeaseHolderHoldsCommitted(t *testing.T) {
	c := newTestCluster(t, false)
	for range 200 {
		require.NoError(t, c.Step())
	}
	p, ok := c.Primary()
	require.True(t, ok)
	require.NotZero(t, c.Status(p).LeaseStamp, "a settled primary holds its lease")
	require.NoError(t, c.checkLeases())
	assert.Positive(t, c.Stats.LeaseChecks)
	c.committed = append(c.committed, 42) // a record committed elsewhere
	assert.ErrorContains(t, c.checkLeases(), "holds its read lease")
}

func TestCheck_NewPrimaryHoldsCommitted(t *testing.T) {
	c := newTestCluster(t, false)
	c.committed = []uint64{1, 2}
	s := &SimNode{ID: 2, Disk: eventlog.NewMemoryLog()}
	assert.ErrorContains(t, c.checkHolds(s), "holds 0 records, 2 are committed")
}

func TestCheck_FinalAcked(t *testing.T) {
	c := newTestCluster(t, false)
	c.Acked[ClientSeq{"c0", 1}] = "c0-1"
	assert.ErrorContains(t, c.CheckFinal(), "acknowledged {c0 1} missing on n0")

	c = newTestCluster(t, false)
	c.issued[ClientSeq{"c0", 1}] = true
	for _, s := range c.Nodes {
		_, err := s.SM.Apply(eventlog.Record{Offset: s.SM.Applied() + 1, Type: "test.put", ClientID: "c0", Seq: 1, Data: []byte("c0-1")})
		require.NoError(t, err)
	}
	c.Acked[ClientSeq{"c0", 1}] = "another id"
	assert.ErrorContains(t, c.CheckFinal(), `was answered "another id"`)
}

func TestNetwork_FIFOAndPartition(t *testing.T) {
	c := newTestCluster(t, false)
	n := NewNetwork(NetworkOptions{DelayMinTicks: 1, DelayMeanTicks: 5, FIFO: true}, c.rng)
	for i := range 50 {
		n.Send(0, replica.Message{From: 0, To: 1, Count: i})
	}
	var got []int
	for now := int64(0); now < 1000 && n.Len() > 0; now++ {
		for m, ok := n.Next(now); ok; m, ok = n.Next(now) {
			got = append(got, m.Count)
		}
	}
	require.Len(t, got, 50)
	for i, v := range got {
		assert.Equal(t, i, v, "in order per path")
	}
	n.Send(0, replica.Message{From: 0, To: 1})
	n.Partition(map[replica.NodeID]int{0: 0, 1: 1})
	_, ok := n.Next(1000)
	assert.False(t, ok, "lost across the partition")
}
