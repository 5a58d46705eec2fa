package replica_test

// Behaviour of one Node driven by hand through its public API: the caller's
// contract (Ready/Advance), fencing, votes, catch-up answers, ISR rules,
// restarts and pauses. Each test names the rule of DESIGN.md section 3 or
// docs/replication.md that it checks.

import (
	crand "crypto/rand"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

func cfg(id replica.NodeID, peers ...replica.NodeID) replica.Config {
	return replica.Config{ID: id, Peers: peers, HeartbeatTicks: 2, FailoverTicks: 20, LagTicks: 40, MaxUncommitted: 10}
}

// persist does a Ready's writes with the executor the shell uses.
func persist(t *testing.T, l *eventlog.MemoryLog, rd replica.Ready) {
	t.Helper()
	require.NoError(t, replica.Persist(l, rd))
}

// drain processes every Ready and returns the messages sent and the last
// commit.
func drain(t *testing.T, n *replica.Node, l *eventlog.MemoryLog) ([]replica.Message, eventlog.Offset) {
	t.Helper()
	var msgs []replica.Message
	var commit eventlog.Offset
	for {
		rd, ok := n.Ready()
		if !ok {
			return msgs, commit
		}
		persist(t, l, rd)
		msgs = append(msgs, rd.EarlyMessages...)
		msgs = append(msgs, rd.Messages...)
		commit = rd.Commit
		n.Advance(rd)
	}
}

func ofType(msgs []replica.Message, typ replica.MsgType) []replica.Message {
	var out []replica.Message
	for _, m := range msgs {
		if m.Type == typ {
			out = append(out, m)
		}
	}
	return out
}

func newNode(t *testing.T, c replica.Config, l *eventlog.MemoryLog) *replica.Node {
	t.Helper()
	_, _, err := replica.EnsureIdentity(l, c.ID, crand.Reader)
	require.NoError(t, err)
	n, err := replica.NewNode(c, l)
	require.NoError(t, err)
	return n
}

// Rule: a one-replica cluster leads at once; a new primary writes the
// epoch-start record, then the ISR record, and persists its epoch.
func TestNode_SingleReplicaLeadsAtOnce(t *testing.T) {
	l := eventlog.NewMemoryLog()
	n := newNode(t, cfg(0, 0), l)
	_, commit := drain(t, n, l)
	st := n.Status()
	assert.Equal(t, replica.RolePrimary, st.Role)
	assert.Equal(t, eventlog.Epoch(1), st.Epoch)
	assert.Equal(t, eventlog.Offset(2), commit, "alone in the ISR, its durable records are committed")
	recs, err := l.Read(1, 1<<20)
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, replica.TypeEpochStart, recs[0].Type)
	assert.Equal(t, replica.TypeISR, recs[1].Type)
	isr, err := replica.DecodeISRChange(recs[1].Data)
	require.NoError(t, err)
	assert.Equal(t, []replica.ISRMember{{ID: 0, Incarnation: 1, Disk: st.Identity.Disk}}, isr.Members)
	assert.NotZero(t, st.Identity.Disk)
	assert.Equal(t, []eventlog.EpochStart{{Epoch: 1, Start: 1}}, l.Epochs())
	b, ok, err := l.Meta(replica.HardStateKey)
	require.NoError(t, err)
	require.True(t, ok)
	hs, err := replica.DecodeHardState(b)
	require.NoError(t, err)
	assert.Equal(t, replica.HardState{Epoch: 1, Vote: 0, Incarnation: 1}, hs)

	last, err := n.Propose([]eventlog.Record{{Type: "chat.send", ClientID: "c", Seq: 1, Data: []byte("x")}})
	require.NoError(t, err)
	assert.Equal(t, eventlog.Offset(3), last)
	_, commit = drain(t, n, l)
	assert.Equal(t, eventlog.Offset(3), commit)

	// A restart opens a new epoch: the ISR was itself alone.
	n2 := newNode(t, cfg(0, 0), l)
	drain(t, n2, l)
	assert.Equal(t, replica.RolePrimary, n2.Status().Role)
	assert.Equal(t, eventlog.Epoch(2), n2.Status().Epoch)
	assert.Equal(t, eventlog.Offset(5), l.Last())
}

func TestNode_ProposeErrors(t *testing.T) {
	t.Run("backup says who the primary is, or why there is none", func(t *testing.T) {
		l := eventlog.NewMemoryLog()
		n := newNode(t, cfg(1, 0, 1, 2), l)
		drain(t, n, l)
		_, err := n.Propose([]eventlog.Record{{Type: "chat.send"}})
		require.ErrorIs(t, err, replica.ErrNotPrimary)
		var npe *replica.NotPrimaryError
		require.ErrorAs(t, err, &npe)
		assert.Equal(t, replica.None, npe.Primary)
		assert.Contains(t, err.Error(), "restarted; waiting to hear from replicas 0, 2")

		require.NoError(t, n.Step(replica.Message{Type: replica.MsgHeartbeat, From: 0, To: 1, Epoch: 1, Role: replica.RolePrimary}))
		_, err = n.Propose([]eventlog.Record{{Type: "chat.send"}})
		require.ErrorAs(t, err, &npe)
		assert.Equal(t, replica.NodeID(0), npe.Primary)
	})
	t.Run("empty and backpressure", func(t *testing.T) {
		l := eventlog.NewMemoryLog()
		n := newNode(t, cfg(0, 0), l)
		_, err := n.Propose(nil)
		require.ErrorIs(t, err, replica.ErrEmptyProposal)
		// MaxUncommitted is 10 and the first Ready (2 records) is not
		// persisted yet, so nothing is committed.
		_, err = n.Propose(make([]eventlog.Record, 8))
		require.NoError(t, err)
		_, err = n.Propose(make([]eventlog.Record, 1))
		require.ErrorIs(t, err, replica.ErrBackpressure)
		drain(t, n, l)
		_, err = n.Propose(make([]eventlog.Record, 1))
		require.NoError(t, err, "committed records no longer count")
	})
}

// The caller's contract: nothing may be called between Ready and Advance.
func TestNode_ReadyAdvanceContract(t *testing.T) {
	l := eventlog.NewMemoryLog()
	n := newNode(t, cfg(0, 0), l)
	assert.Panics(t, func() { n.Advance(replica.Ready{}) }, "Advance without Ready")
	rd, ok := n.Ready()
	require.True(t, ok)
	assert.Panics(t, func() { n.Tick() })
	assert.Panics(t, func() { _, _ = n.Ready() })
	persist(t, l, rd)
	n.Advance(rd)
	assert.NotPanics(t, func() { n.Tick() })
}

// Rule: epochs fence. A message from a higher epoch makes a primary step
// down; one from a lower epoch is answered with ours so its sender steps
// down.
func TestNode_EpochFencing(t *testing.T) {
	l := eventlog.NewMemoryLog()
	n := newNode(t, cfg(0, 0, 1, 2), l)
	drain(t, n, l)
	require.NoError(t, n.ForceLead()) // epoch 1, primary
	drain(t, n, l)
	require.Equal(t, replica.RolePrimary, n.Status().Role)

	require.NoError(t, n.Step(replica.Message{Type: replica.MsgHeartbeat, From: 1, To: 0, Epoch: 0}))
	msgs, _ := drain(t, n, l)
	hb := ofType(msgs, replica.MsgHeartbeat)
	require.Len(t, hb, 1, "the stale sender is told the current epoch")
	assert.Equal(t, eventlog.Epoch(1), hb[0].Epoch)
	assert.Equal(t, replica.NodeID(1), hb[0].To)

	require.NoError(t, n.Step(replica.Message{Type: replica.MsgHeartbeat, From: 2, To: 0, Epoch: 3, Role: replica.RolePrimary}))
	rd, ok := n.Ready()
	require.True(t, ok)
	require.NotNil(t, rd.HardState, "the adopted epoch is persisted")
	assert.Equal(t, eventlog.Epoch(3), rd.HardState.Epoch)
	persist(t, l, rd)
	n.Advance(rd)
	st := n.Status()
	assert.Equal(t, replica.RoleBackup, st.Role)
	assert.Equal(t, replica.NodeID(2), st.Primary)
	_, err := n.Propose([]eventlog.Record{{Type: "x"}})
	assert.ErrorIs(t, err, replica.ErrNotPrimary)

	err = n.Step(replica.Message{Type: replica.MsgHeartbeat, From: 7, To: 0, Epoch: 3})
	assert.ErrorIs(t, err, replica.ErrUnknownPeer)
}

// Rule: each node grants at most one candidate per epoch, persisting the
// vote before answering, and refuses a less fresh candidate when it may
// lead itself.
func TestNode_Vote(t *testing.T) {
	// Node 1 with a log of epoch 1 up to offset 2 (written as a lone primary
	// and then given a 3-replica config).
	mk := func(t *testing.T, recovered bool) (*replica.Node, *eventlog.MemoryLog) {
		l := eventlog.NewMemoryLog()
		require.NoError(t, l.Append([]eventlog.Record{{Offset: 1, Epoch: 2, Type: "x"}, {Offset: 2, Epoch: 2, Type: "x"}}))
		require.NoError(t, l.AddEpoch(eventlog.EpochStart{Epoch: 2, Start: 1}))
		n := newNode(t, cfg(1, 0, 1, 2), l)
		drain(t, n, l)
		if recovered {
			for _, from := range []replica.NodeID{0, 2} {
				require.NoError(t, n.Step(replica.Message{Type: replica.MsgHeartbeat, From: from, To: 1, Epoch: 2,
					ISR: []replica.ISRMember{{ID: 0}, {ID: 1}, {ID: 2}}, SeenIncarnation: 1}))
			}
			drain(t, n, l)
			require.True(t, n.Status().Eligible)
		}
		return n, l
	}
	vote := func(from replica.NodeID, epoch eventlog.Epoch, lastEpoch eventlog.Epoch, last eventlog.Offset) replica.Message {
		return replica.Message{Type: replica.MsgVote, From: from, To: 1, Epoch: epoch, Role: replica.RoleCandidate,
			LastEpoch: lastEpoch, LastOffset: last}
	}
	tests := []struct {
		name        string
		recovered   bool
		msgs        []replica.Message
		wantReject  bool
		wantFresher bool
	}{
		{"as fresh: granted", true, []replica.Message{vote(0, 4, 2, 2)}, false, false},
		{"fresher candidate: granted", true, []replica.Message{vote(0, 4, 3, 1)}, false, false},
		{"less fresh while eligible: refused, saying so", true, []replica.Message{vote(0, 4, 2, 1)}, true, true},
		{"less fresh, not eligible (recovering): granted", false, []replica.Message{vote(0, 4, 2, 1)}, false, false},
		{"second candidate in the same epoch: refused", true, []replica.Message{vote(0, 4, 2, 2), vote(2, 4, 2, 2)}, true, false},
		{"same candidate asking again: granted again", true, []replica.Message{vote(0, 4, 2, 2), vote(0, 4, 2, 2)}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, l := mk(t, tt.recovered)
			var last replica.Message
			for _, m := range tt.msgs {
				require.NoError(t, n.Step(m))
				rd, ok := n.Ready()
				require.True(t, ok)
				resp := ofType(rd.Messages, replica.MsgVoteResp)
				require.Len(t, resp, 1)
				last = resp[0]
				if !last.Reject {
					require.NotNil(t, rd.HardState, "a grant is persisted in the same Ready, before it is sent")
					assert.Equal(t, m.From, rd.HardState.Vote)
				}
				persist(t, l, rd)
				n.Advance(rd)
			}
			assert.Equal(t, tt.wantReject, last.Reject, "reject")
			assert.Equal(t, tt.wantFresher, last.Fresher, "fresher")
		})
	}
}

// Rule: catch-up by offset. The primary checks the backup's (last offset,
// last epoch) against its epoch history and, on divergence, answers where
// the shared history ends.
func TestNode_FetchAnswers(t *testing.T) {
	// Primary 0's log: epoch 1 at 1-3, epoch 4 at 4-5, then its own epoch 7.
	l := eventlog.NewMemoryLog()
	var recs []eventlog.Record
	for off, e := range map[eventlog.Offset]eventlog.Epoch{1: 1, 2: 1, 3: 1, 4: 4, 5: 4} {
		recs = append(recs, eventlog.Record{Offset: off, Epoch: e, Type: "x"})
	}
	slicesSortByOffset(recs)
	require.NoError(t, l.Append(recs))
	require.NoError(t, l.AddEpoch(eventlog.EpochStart{Epoch: 1, Start: 1}))
	require.NoError(t, l.AddEpoch(eventlog.EpochStart{Epoch: 4, Start: 4}))
	n := newNode(t, cfg(0, 0, 1, 2), l)
	drain(t, n, l)
	require.NoError(t, n.ForceLead()) // epoch 7 starts at offset 6
	drain(t, n, l)
	epoch := n.Status().Epoch

	tests := []struct {
		name      string
		last      eventlog.Offset
		lastEpoch eventlog.Epoch
		reject    bool
		wantOff   eventlog.Offset
		wantEpoch eventlog.Epoch
	}{
		{"empty log matches", 0, 0, false, 0, 0},
		{"prefix of epoch 1", 2, 1, false, 2, 1},
		{"all of epoch 4", 5, 4, false, 5, 4},
		{"epoch 1 beyond its end here", 4, 1, true, 3, 1},
		{"an epoch this primary never had", 5, 3, true, 3, 1},
		{"longer epoch 4 than ours", 9, 4, true, 5, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, n.Step(replica.Message{Type: replica.MsgFetch, From: 1, To: 0, Epoch: epoch,
				LastOffset: tt.last, LastEpoch: tt.lastEpoch}))
			msgs, _ := drain(t, n, l)
			resp := ofType(msgs, replica.MsgFetchResp)
			require.Len(t, resp, 1)
			assert.Equal(t, tt.reject, resp[0].Reject)
			assert.Equal(t, tt.wantOff, resp[0].LastOffset)
			assert.Equal(t, tt.wantEpoch, resp[0].LastEpoch)
			if !tt.reject {
				app := ofType(msgs, replica.MsgAppend)
				require.NotEmpty(t, app, "a matching backup is streamed the rest at once")
				assert.Equal(t, tt.last, app[0].Prev)
			}
		})
	}
}

func slicesSortByOffset(recs []eventlog.Record) {
	for i := range recs {
		for j := i + 1; j < len(recs); j++ {
			if recs[j].Offset < recs[i].Offset {
				recs[i], recs[j] = recs[j], recs[i]
			}
		}
	}
}

// Rule (a): a member silent for FailoverTicks is dropped from the ISR (it
// crashed, under fail-stop), with an ISR record; then commit proceeds
// without it.
func TestNode_DropsSilentMember(t *testing.T) {
	l := eventlog.NewMemoryLog()
	n := newNode(t, cfg(0, 0, 1, 2), l)
	drain(t, n, l)
	require.NoError(t, n.ForceLead())
	drain(t, n, l)
	last, err := n.Propose([]eventlog.Record{{Type: "x"}})
	require.NoError(t, err)
	// ForceLead recorded the ISR {0}, so it commits alone at once.
	_, commit := drain(t, n, l)
	assert.Equal(t, last, commit)
	// Peer 1 catches up and joins; then it falls silent.
	require.NoError(t, n.Step(replica.Message{Type: replica.MsgFetch, From: 1, To: 0, Epoch: n.Status().Epoch}))
	msgs, _ := drain(t, n, l)
	app := ofType(msgs, replica.MsgAppend)
	require.NotEmpty(t, app)
	end := app[len(app)-1].Prev + eventlog.Offset(len(app[len(app)-1].Records))
	require.NoError(t, n.Step(replica.Message{Type: replica.MsgAppendResp, From: 1, To: 0, Epoch: n.Status().Epoch, LastOffset: end}))
	drain(t, n, l)
	assert.Equal(t, []replica.NodeID{0, 1}, n.Status().ISR, "caught up: rejoined")
	last, err = n.Propose([]eventlog.Record{{Type: "x"}})
	require.NoError(t, err)
	_, commit = drain(t, n, l)
	assert.Less(t, commit, last, "commit waits for member 1")
	for range 19 {
		n.Tick()
	}
	drain(t, n, l)
	assert.Equal(t, []replica.NodeID{0, 1}, n.Status().ISR, "19 ticks of silence are not a crash")
	n.Tick()
	_, commit = drain(t, n, l)
	assert.Equal(t, []replica.NodeID{0}, n.Status().ISR)
	assert.Equal(t, l.Last(), commit, "the ISR record and everything before it commit without the crashed member")
}

// A restarted replica is recovering and says why; a long pause counts as a
// restart, a short one does not.
func TestNode_RestartAndPause(t *testing.T) {
	l := eventlog.NewMemoryLog()
	n := newNode(t, cfg(2, 0, 1, 2), l)
	drain(t, n, l)
	st := n.Status()
	assert.True(t, st.Recovering)
	assert.False(t, st.Eligible)
	assert.Equal(t, "restarted; waiting to hear from replicas 0, 1 of its last ISR [0 1 2]", st.Waiting)
	isr := []replica.ISRMember{{ID: 0}, {ID: 1}, {ID: 2}}
	for _, from := range []replica.NodeID{0, 1} {
		// Sent before the sender heard from this incarnation: stale.
		require.NoError(t, n.Step(replica.Message{Type: replica.MsgHeartbeat, From: from, To: 2, ISR: isr, SeenIncarnation: 0}))
	}
	assert.True(t, n.Status().Recovering, "reports older than this incarnation do not count")
	require.NoError(t, n.Step(replica.Message{Type: replica.MsgHeartbeat, From: 0, To: 2, ISR: isr, SeenIncarnation: 1}))
	require.NoError(t, n.Step(replica.Message{Type: replica.MsgHeartbeat, From: 1, To: 2, ISR: isr, SeenIncarnation: 1, Role: replica.RolePrimary}))
	assert.True(t, n.Status().Recovering, "a primary's report resets what was heard: it may drop this replica right after")
	assert.Equal(t, replica.NodeID(1), n.Status().Primary, "a recovering replica follows the primary it hears")
	require.NoError(t, n.Step(replica.Message{Type: replica.MsgHeartbeat, From: 1, To: 2, Epoch: 1, ISR: isr, SeenIncarnation: 1}))
	require.NoError(t, n.Step(replica.Message{Type: replica.MsgHeartbeat, From: 0, To: 2, Epoch: 1, ISR: isr, SeenIncarnation: 1}))
	drain(t, n, l)
	assert.True(t, n.Status().Eligible, "heard from every member, none a primary")

	n.Paused(5)
	assert.True(t, n.Status().Eligible, "a short pause changes nothing")
	n.Paused(10)
	rd, ok := n.Ready()
	require.True(t, ok)
	require.NotNil(t, rd.HardState)
	assert.Equal(t, uint64(2), rd.HardState.Incarnation, "a long pause is a new incarnation")
	persist(t, l, rd)
	n.Advance(rd)
	assert.True(t, n.Status().Recovering)
}

// A replica that pauses while still recovering keeps waiting for the peers
// it has not heard from since its restart: the pause rule that counts a
// peer silent since before the pause as crashed holds only for a replica
// that was in service (chatsim tcp seed 11 found a restarted replica that
// stalled leading alone without the records its peer had committed).
func TestNode_PauseWhileRecoveringKeepsWaiting(t *testing.T) {
	l := eventlog.NewMemoryLog()
	n := newNode(t, cfg(2, 0, 1, 2), l)
	drain(t, n, l)
	isr := []replica.ISRMember{{ID: 0}, {ID: 1}, {ID: 2}}
	// Peer 0 is heard on every tick; peer 1 never, for longer than the
	// failure timeout.
	for range 25 {
		n.Tick()
		require.NoError(t, n.Step(replica.Message{Type: replica.MsgHeartbeat, From: 0, To: 2, Epoch: 1, ISR: isr, SeenIncarnation: 1}))
		drain(t, n, l)
	}
	require.True(t, n.Status().Recovering)
	assert.Equal(t, "restarted; waiting to hear from replica 1 of its last ISR [0 1 2]", n.Status().Waiting)
	n.Paused(10)
	drain(t, n, l)
	require.NoError(t, n.Step(replica.Message{Type: replica.MsgHeartbeat, From: 0, To: 2, Epoch: 1, ISR: isr, SeenIncarnation: 2}))
	drain(t, n, l)
	st := n.Status()
	assert.True(t, st.Recovering, "replica 1 was never heard from since the restart")
	assert.False(t, st.Eligible)
	assert.Equal(t, "restarted; waiting to hear from replica 1 of its last ISR [0 1 2]", st.Waiting)
}

// A crash between Append and AddEpoch leaves records whose epoch the
// history lacks; the next start repairs it.
func TestNode_RepairsEpochHistory(t *testing.T) {
	l := eventlog.NewMemoryLog()
	require.NoError(t, l.Append([]eventlog.Record{{Offset: 1, Epoch: 1}, {Offset: 2, Epoch: 3}, {Offset: 3, Epoch: 3}}))
	require.NoError(t, l.AddEpoch(eventlog.EpochStart{Epoch: 1, Start: 1}))
	n := newNode(t, cfg(0, 0, 1, 2), l)
	rd, ok := n.Ready()
	require.True(t, ok)
	assert.Equal(t, []eventlog.EpochStart{{Epoch: 3, Start: 2}}, rd.Epochs)
	persist(t, l, rd)
	n.Advance(rd)
	assert.Equal(t, eventlog.Epoch(3), n.Status().Epoch)
}

type failingLog struct {
	*eventlog.MemoryLog
}

func (failingLog) Read(eventlog.Offset, int) ([]eventlog.Record, error) {
	return nil, errors.New("disk on fire")
}

// A log read error stops the node: its view of its own log is not to be
// trusted any more.
func TestNode_StopsOnReadError(t *testing.T) {
	l := eventlog.NewMemoryLog()
	require.NoError(t, l.Append([]eventlog.Record{{Offset: 1, Epoch: 1}}))
	_, _, err := replica.EnsureIdentity(l, 0, crand.Reader)
	require.NoError(t, err)
	_, err = replica.NewNode(cfg(0, 0, 1, 2), failingLog{l})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "disk on fire")
}

func TestMessage_RoundTrip(t *testing.T) {
	m := replica.Message{Type: replica.MsgAppend, From: 1, To: 2, Epoch: 7, Role: replica.RolePrimary, Primary: 1,
		LastOffset: 9, LastEpoch: 7, Commit: 8, Prev: 8, PrevEpoch: 7,
		Records: []eventlog.Record{{Offset: 9, Epoch: 7, Type: "chat.send", ClientID: "c", Seq: 3, Time: 42, Data: []byte("hi")}},
		ISR:     []replica.ISRMember{{ID: 1, Incarnation: 2}}, ISREpoch: 7, ISRAt: 2, Incarnation: 2, Count: 1}
	b, err := replica.EncodeMessage(m)
	require.NoError(t, err)
	got, err := replica.DecodeMessage(b)
	require.NoError(t, err)
	assert.Equal(t, m, got)
	_, err = replica.DecodeMessage([]byte{0xc1})
	assert.Error(t, err)
	_, err = replica.DecodeHardState([]byte{0xc1})
	assert.Error(t, err)
	assert.Equal(t, "append", replica.MsgAppend.String())
	assert.Equal(t, "none", replica.None.String())
	assert.Equal(t, "primary", replica.RolePrimary.String())
}

// Rule (snapshots): a backup told it needs a snapshot remembers the
// primary's log start; a notice it no longer needs (its log reaches that
// far) or an older one changes nothing, and a new primary clears it: the
// shell installs only a snapshot that helps (docs/replication.md,
// "Snapshots and compaction").
func TestNode_SnapshotNotice(t *testing.T) {
	l := eventlog.NewMemoryLog()
	recs := make([]eventlog.Record, 5)
	for i := range recs {
		recs[i] = eventlog.Record{Offset: eventlog.Offset(i + 1), Epoch: 1, Type: "x"}
	}
	require.NoError(t, l.Append(recs))
	require.NoError(t, l.AddEpoch(eventlog.EpochStart{Epoch: 1, Start: 1}))
	n := newNode(t, cfg(2, 0, 1, 2), l)
	drain(t, n, l)
	isr := []replica.ISRMember{{ID: 0}, {ID: 1}, {ID: 2}}
	hb := func(from replica.NodeID, epoch eventlog.Epoch) {
		require.NoError(t, n.Step(replica.Message{Type: replica.MsgHeartbeat, From: from, To: 2, Epoch: epoch,
			Role: replica.RolePrimary, ISR: isr, SeenIncarnation: 1}))
		drain(t, n, l)
	}
	notice := func(at eventlog.Offset) {
		require.NoError(t, n.Step(replica.Message{Type: replica.MsgSnapshot, From: 0, To: 2, Epoch: 2, At: at}))
		drain(t, n, l)
	}
	hb(0, 2)
	require.Equal(t, replica.NodeID(0), n.Status().Primary)

	notice(3) // stale: this log holds offset 4
	assert.Equal(t, replica.None, n.Status().SnapshotFrom)

	notice(10)
	st := n.Status()
	assert.Equal(t, replica.NodeID(0), st.SnapshotFrom)
	assert.Equal(t, eventlog.Offset(10), st.SnapshotAt)
	assert.Contains(t, st.Waiting, "installing a snapshot from primary 0")

	notice(8) // an older notice does not lower what helps
	assert.Equal(t, eventlog.Offset(10), n.Status().SnapshotAt)

	hb(1, 3) // another primary may hold what the first one compacted
	st = n.Status()
	assert.Equal(t, replica.None, st.SnapshotFrom)
	assert.Equal(t, eventlog.Offset(0), st.SnapshotAt)
}

// The rule the shell and the simulator apply to a snapshot offer, and
// again before the install.
func TestStatus_UnwantedSnapshot(t *testing.T) {
	asking := replica.Status{Role: replica.RoleBackup, Primary: 1, SnapshotFrom: 1, SnapshotAt: 100}
	assert.Empty(t, asking.UnwantedSnapshot(1, 120, 1, 50), "asked for, beyond what it holds")
	assert.Empty(t, asking.UnwantedSnapshot(1, 100, 1, 50))
	assert.Equal(t, "not asked for", asking.UnwantedSnapshot(1, 99, 1, 50), "older than the primary's log start")
	assert.Contains(t, asking.UnwantedSnapshot(2, 120, 1, 50), "not this backup's primary")
	assert.Equal(t, "this replica already holds that far", asking.UnwantedSnapshot(1, 120, 100, 130))
	caughtUp := asking
	caughtUp.SnapshotFrom, caughtUp.SnapshotAt = replica.None, 0
	assert.Equal(t, "not asked for", caughtUp.UnwantedSnapshot(1, 120, 110, 115),
		"a backup that caught up by offset meanwhile asks no more")
	primary := asking
	primary.Role = replica.RolePrimary
	assert.NotEmpty(t, primary.UnwantedSnapshot(1, 120, 1, 50))
}
