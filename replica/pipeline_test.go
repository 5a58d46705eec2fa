package replica_test

// The replication pipeline's shape (Ready.EarlyMessages, one Append per
// backup per Ready) and the ISR index that makes start-up independent of the
// log's length (docs/replication.md, "Pipelining" and "Restarted replicas").

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

// leadWithBackup returns node 0 of {0, 1, 2}, forced to lead, with backup 1
// fetched and acknowledged up to the log end: 1 is streaming and in the ISR.
func leadWithBackup(t *testing.T, l *eventlog.MemoryLog) *replica.Node {
	t.Helper()
	n := newNode(t, cfg(0, 0, 1, 2), l)
	drain(t, n, l)
	require.NoError(t, n.ForceLead())
	drain(t, n, l)
	epoch := n.Status().Epoch
	require.NoError(t, n.Step(replica.Message{Type: replica.MsgFetch, From: 1, To: 0, Epoch: epoch}))
	drain(t, n, l)
	require.NoError(t, n.Step(replica.Message{Type: replica.MsgAppendResp, From: 1, To: 0, Epoch: epoch, LastOffset: l.Last()}))
	drain(t, n, l) // the ISR record adding 1
	require.NoError(t, n.Step(replica.Message{Type: replica.MsgAppendResp, From: 1, To: 0, Epoch: epoch, LastOffset: l.Last()}))
	drain(t, n, l)
	require.Equal(t, []replica.NodeID{0, 1}, n.Status().ISR)
	return n
}

// Rule: the primary's Appends leave before its own write (EarlyMessages), one
// per backup for everything proposed before the Ready; it counts itself
// toward commit only after Advance.
func TestNode_EarlyAppendsAndCoalescing(t *testing.T) {
	l := eventlog.NewMemoryLog()
	n := leadWithBackup(t, l)
	epoch := n.Status().Epoch
	first, err := n.Propose([]eventlog.Record{{Type: "chat.send", ClientID: "c", Seq: 1}})
	require.NoError(t, err)
	last, err := n.Propose([]eventlog.Record{{Type: "chat.send", ClientID: "c", Seq: 2}})
	require.NoError(t, err)

	rd, ok := n.Ready()
	require.True(t, ok)
	assert.Empty(t, ofType(rd.Messages, replica.MsgAppend), "no Append waits for the write")
	app := ofType(rd.EarlyMessages, replica.MsgAppend)
	require.Len(t, app, 1, "both proposals share one Append")
	assert.Equal(t, replica.NodeID(1), app[0].To)
	require.Len(t, app[0].Records, 2)
	assert.Equal(t, first, app[0].Records[0].Offset)
	assert.Equal(t, last, app[0].Records[1].Offset)

	// The backup's acknowledgement may arrive before our own write is done:
	// it must not commit what we have not persisted.
	persist(t, l, rd)
	n.Advance(rd)
	require.NoError(t, n.Step(replica.Message{Type: replica.MsgAppendResp, From: 1, To: 0, Epoch: epoch, LastOffset: last}))
	_, commit := drain(t, n, l)
	assert.Equal(t, last, commit)
}

// Rule: a protocol record not yet durable on the primary, a pending hard
// state and a pending truncation keep Appends in Messages (see earlyOK).
func TestNode_ProtocolRecordsAreNotSentEarly(t *testing.T) {
	l := eventlog.NewMemoryLog()
	n := newNode(t, cfg(0, 0, 1, 2), l)
	drain(t, n, l)
	require.NoError(t, n.ForceLead())
	drain(t, n, l)
	epoch := n.Status().Epoch
	require.NoError(t, n.Step(replica.Message{Type: replica.MsgFetch, From: 1, To: 0, Epoch: epoch}))
	drain(t, n, l)
	// Caught up: the primary writes an ISR record adding 1 and sends it, and
	// a client record proposed after it, only after persisting them.
	require.NoError(t, n.Step(replica.Message{Type: replica.MsgAppendResp, From: 1, To: 0, Epoch: epoch, LastOffset: l.Last()}))
	_, err := n.Propose([]eventlog.Record{{Type: "chat.send", ClientID: "c", Seq: 1}})
	require.NoError(t, err)
	rd, ok := n.Ready()
	require.True(t, ok)
	require.Len(t, rd.Records, 2)
	assert.Equal(t, replica.TypeISR, rd.Records[0].Type)
	assert.Empty(t, rd.EarlyMessages)
	app := ofType(rd.Messages, replica.MsgAppend)
	require.NotEmpty(t, app)
	assert.Equal(t, replica.TypeISR, app[0].Records[0].Type)
	persist(t, l, rd)
	n.Advance(rd)

	// A newer epoch arriving after an early Append was queued (here by an
	// acknowledgement, which streams what is pending at once) holds it back
	// with the hard state.
	off, err := n.Propose([]eventlog.Record{{Type: "chat.send", ClientID: "c", Seq: 2}})
	require.NoError(t, err)
	require.NoError(t, n.Step(replica.Message{Type: replica.MsgAppendResp, From: 1, To: 0, Epoch: epoch, LastOffset: l.Last()}))
	require.NoError(t, n.Step(replica.Message{Type: replica.MsgHeartbeat, From: 2, To: 0, Epoch: epoch + 1}))
	rd, ok = n.Ready()
	require.True(t, ok)
	require.NotNil(t, rd.HardState)
	assert.Empty(t, rd.EarlyMessages)
	app = ofType(rd.Messages, replica.MsgAppend)
	require.Len(t, app, 1, "the Append queued before the epoch changed goes after the hard state")
	assert.Equal(t, off, app[0].Records[0].Offset)
	persist(t, l, rd)
	n.Advance(rd)
}

// readISRIndex returns the ISR index l holds.
func readISRIndex(t *testing.T, l *eventlog.MemoryLog) replica.ISRIndex {
	t.Helper()
	b, ok, err := l.Meta(replica.ISRIndexKey)
	require.NoError(t, err)
	require.True(t, ok, "the isr index is persisted")
	x, err := replica.DecodeISRIndex(b)
	require.NoError(t, err)
	return x
}

func setISRIndex(t *testing.T, l *eventlog.MemoryLog, b []byte) {
	t.Helper()
	require.NoError(t, l.SetMeta(replica.ISRIndexKey, b))
}

// Rule: the ISR index names the latest ISR record, each ISR record is chained
// to the one before, and a restart trusts the index only as far as the log
// confirms it.
func TestNode_ISRIndex(t *testing.T) {
	l := eventlog.NewMemoryLog()
	n := leadWithBackup(t, l)
	// Records: 1 epoch start, 2 ISR {0}, 3 ISR {0 1}.
	x := readISRIndex(t, l)
	assert.Equal(t, replica.ISRIndex{At: 3, Epoch: n.Status().Epoch, Chained: true, PrevAt: 2, PrevEpoch: n.Status().Epoch}, x)
	recs, err := l.Read(2, 1<<20)
	require.NoError(t, err)
	c2, err := replica.DecodeISRChange(recs[0].Data)
	require.NoError(t, err)
	assert.True(t, c2.Chained)
	assert.Zero(t, c2.PrevAt, "the first ISR record follows the initial ISR")
	for range 5 {
		_, err := n.Propose([]eventlog.Record{{Type: "chat.send"}})
		require.NoError(t, err)
	}
	drain(t, n, l)
	assert.Equal(t, x, readISRIndex(t, l), "client records leave the index alone")

	restartISR := func() []replica.NodeID {
		// Replica 1 restarting on this log (an ISR it is not alone in, so
		// it does not lead at once and rewrite it).
		id, err := replica.EncodeIdentity(replica.Identity{Replica: 1, Disk: 42})
		require.NoError(t, err)
		require.NoError(t, l.SetMeta(replica.IdentityKey, id))
		return newNode(t, cfg(1, 0, 1, 2), l).Status().ISR
	}
	good, err := replica.EncodeISRIndex(x)
	require.NoError(t, err)
	tests := []struct {
		name  string
		index replica.ISRIndex
		want  []replica.NodeID
	}{
		{"index names the latest record", x, []replica.NodeID{0, 1}},
		// A crash between writing the index and appending the record it
		// names: the record before it is the latest.
		{"record missing: its predecessor", replica.ISRIndex{At: 100, Epoch: x.Epoch, Chained: true, PrevAt: 3, PrevEpoch: x.Epoch},
			[]replica.NodeID{0, 1}},
		{"record of another epoch there: its predecessor", replica.ISRIndex{At: 5, Epoch: x.Epoch + 9, Chained: true, PrevAt: 2, PrevEpoch: x.Epoch},
			[]replica.NodeID{0}},
		{"record and predecessor missing: scan", replica.ISRIndex{At: 100, Epoch: x.Epoch, Chained: true, PrevAt: 99, PrevEpoch: x.Epoch},
			[]replica.NodeID{0, 1}},
		{"unchained: scan", replica.ISRIndex{At: 100, Epoch: x.Epoch}, []replica.NodeID{0, 1}},
		{"no record and no predecessor: initial", replica.ISRIndex{At: 100, Epoch: x.Epoch, Chained: true},
			[]replica.NodeID{0, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := replica.EncodeISRIndex(tt.index)
			require.NoError(t, err)
			setISRIndex(t, l, b)
			assert.Equal(t, tt.want, restartISR())
		})
	}
	t.Run("undecodable index: scan", func(t *testing.T) {
		setISRIndex(t, l, []byte{0xc1})
		assert.Equal(t, []replica.NodeID{0, 1}, restartISR())
	})
	t.Run("a restart rewrites an index it could not trust", func(t *testing.T) {
		setISRIndex(t, l, []byte{0xc1})
		m := newNode(t, cfg(1, 0, 1, 2), l)
		rd, ok := m.Ready()
		require.True(t, ok)
		require.NotNil(t, rd.ISRIndex)
		assert.Equal(t, x, *rd.ISRIndex)
		persist(t, l, rd)
		m.Advance(rd)
		assert.Equal(t, x, readISRIndex(t, l))
	})
	t.Run("a restart with a valid index does not rewrite it", func(t *testing.T) {
		setISRIndex(t, l, good)
		m := newNode(t, cfg(1, 0, 1, 2), l)
		rd, ok := m.Ready()
		require.True(t, ok)
		assert.Nil(t, rd.ISRIndex)
		m.Advance(rd)
	})
}

// Rule: truncating below the latest ISR records follows the chain back to
// the ISR in effect, and the index follows (written after the truncation).
func TestNode_TruncationFollowsISRChain(t *testing.T) {
	pl := eventlog.NewMemoryLog()
	p := leadWithBackup(t, pl)
	epoch := p.Status().Epoch
	recs, err := pl.Read(1, 1<<20)
	require.NoError(t, err)
	require.Len(t, recs, 3)

	// Backup 1 holds the primary's three records, then the primary crashes
	// and 2 leads in a later epoch, where 1's records after offset 2 (the
	// ISR record adding 1) are divergent.
	bl := eventlog.NewMemoryLog()
	b := newNode(t, cfg(1, 0, 1, 2), bl)
	drain(t, b, bl)
	require.NoError(t, b.Step(replica.Message{Type: replica.MsgAppend, From: 0, To: 1, Epoch: epoch, Role: replica.RolePrimary,
		Records: recs}))
	drain(t, b, bl)
	require.Equal(t, eventlog.Offset(3), readISRIndex(t, bl).At)

	e2 := epoch + 1
	for (e2-1)%3 != 2 {
		e2++
	}
	require.NoError(t, b.Step(replica.Message{Type: replica.MsgAppend, From: 2, To: 1, Epoch: e2, Role: replica.RolePrimary,
		Prev: 2, PrevEpoch: epoch, Records: []eventlog.Record{{Offset: 3, Epoch: e2, Type: replica.TypeEpochStart}}}))
	rd, ok := b.Ready()
	require.True(t, ok)
	require.True(t, rd.Truncate)
	assert.Equal(t, eventlog.Offset(2), rd.TruncateAfter)
	require.NotNil(t, rd.ISRIndex)
	assert.Equal(t, eventlog.Offset(2), rd.ISRIndex.At, "the ISR in effect at offset 2 is the record there")
	persist(t, bl, rd)
	b.Advance(rd)
	assert.Equal(t, []replica.NodeID{0}, newNode(t, cfg(1, 0, 1, 2), bl).Status().ISR)
}
