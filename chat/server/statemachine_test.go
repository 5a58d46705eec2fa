package server

// Goal: the state machine tells the truth about re-submitted records (a
// warning for each one rejected or applied where dedup could not vouch for
// it, and counters for all), rolls the state back through its undo records
// and makes that durable, leaves the caller to reset and replay when the
// undo history is too short, and the id a send is acknowledged with is
// chat.MessageID of its request.

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/wire"
	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica/shell"
)

var _ shell.Rollbacker = (*StateMachine)(nil)

// recLog builds a log of chat records with dense offsets.
type recLog struct {
	t    *testing.T
	recs []eventlog.Record
}

func (l *recLog) add(client string, seq uint64, ev chat.Event) *eventlog.Record {
	l.t.Helper()
	typ, data, err := chat.EncodeEvent(ev)
	require.NoError(l.t, err)
	l.recs = append(l.recs, eventlog.Record{Offset: eventlog.Offset(len(l.recs) + 1), Epoch: 1, Type: typ,
		ClientID: client, Seq: seq, Time: 1, Data: data})
	return &l.recs[len(l.recs)-1]
}

// register adds the registration of name, as its own client.
func (l *recLog) register(name string) {
	l.add("reg-"+name, 1, &chat.RegisterEvent{Name: name, PasswordHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA"})
}

func (l *recLog) send(client string, seq, from, to uint64) *eventlog.Record {
	return l.add(client, seq, &chat.SendEvent{MessageID: chat.MessageID(client, seq), FromUID: from, ToUID: to, Body: "x"})
}

// syncedLog is a buffer for a slog handler, safe for the applier's use.
type syncedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncedLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncedLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newLoggedStateMachine(t *testing.T) (*StateMachine, *syncedLog) {
	state := chat.NewState(chat.NewMemStore())
	sm := NewStateMachine(state)
	var logs syncedLog
	srv, err := New(Config{State: state, Replicator: &fakeRole{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	sm.SetServer(srv)
	return sm, &logs
}

func TestStateMachine_Resubmissions(t *testing.T) {
	sm, logs := newLoggedStateMachine(t)
	l := &recLog{t: t}
	l.register("ann") // uid 1
	l.register("bob") // uid 2
	l.send("c", 1, 1, 2)
	l.add("admin", 1, &chat.DeleteAccountEvent{UID: 2})
	require.NoError(t, sm.Apply(l.recs))

	dup := l.send("c", 1, 1, 2) // landed before the fork
	dup.OrigEpoch, dup.OrigOffset = 1, 40
	rejected := l.send("c", 2, 1, 2) // to bob, deleted on the winning side
	rejected.OrigEpoch, rejected.OrigOffset = 1, 41
	applied := l.send("c", 3, 1, 1)
	applied.OrigEpoch, applied.OrigOffset = 1, 42
	l.send("c", 4, 1, 1) // not a re-submission: counted nowhere
	require.NoError(t, sm.Apply(l.recs[4:]))

	assert.Equal(t, ResubmissionCounts{Applied: 1, Duplicate: 1, Rejected: 1}, sm.Resubmissions())
	out := logs.String()
	assert.Equal(t, 1, strings.Count(out, "level=WARN"), out)
	assert.Contains(t, out, "re-submitted record rejected")
	for _, attr := range []string{"client=c", "seq=2", "orig_epoch=1", "orig_offset=41", "code=unknown_user", "message="} {
		assert.Contains(t, out, attr)
	}
}

func TestStateMachine_ResubmissionWhereDedupForgot(t *testing.T) {
	sm, logs := newLoggedStateMachine(t)
	l := &recLog{t: t}
	l.register("ann")
	// Every other seq of "c" never applied: the dedup table keeps a hole
	// for each, up to its bound, and forgets the oldest past it.
	for seq := uint64(2); seq <= 2*(4096+400); seq += 2 {
		l.add("c", seq, &chat.DeliverEvent{UID: 99, MessageIDs: []uint64{1}})
	}
	require.NoError(t, sm.Apply(l.recs))
	n := len(l.recs)
	r := l.send("c", 1, 1, 1) // seq 1: long forgotten
	r.OrigEpoch, r.OrigOffset = 1, 7
	again := *r
	again.Offset++
	l.recs = append(l.recs, again)
	require.NoError(t, sm.Apply(l.recs[n:]))

	assert.Equal(t, ResubmissionCounts{Applied: 1, Duplicate: 1, Unknown: 1}, sm.Resubmissions(),
		"applied once, the copy known by its message id")
	out := logs.String()
	assert.Equal(t, 1, strings.Count(out, "level=WARN"), out)
	assert.Contains(t, out, "may be a duplicate")
	assert.Contains(t, out, "seq=1")
}

// rollbackOrReset is what the replication shell does with a log truncated
// after `after` below what the state applied: roll back if it can, else
// reset and replay from the start. It returns whether it reset.
func rollbackOrReset(t *testing.T, sm *StateMachine, log []eventlog.Record, after eventlog.Offset) bool {
	t.Helper()
	reset := false
	off, err := sm.RollbackTo(after)
	if err != nil {
		require.ErrorIs(t, err, chat.ErrUndoUnavailable)
		require.NoError(t, sm.Reset())
		off, reset = 0, true
	}
	require.NoError(t, sm.Apply(log[off:after]))
	return reset
}

func TestStateMachine_RollbackOrReset(t *testing.T) {
	l := &recLog{t: t}
	l.register("ann")
	for seq := uint64(1); seq <= 30; seq++ {
		l.send("c", seq, 1, 1)
	}
	want := chat.NewState(chat.NewMemStore())
	require.NoError(t, want.Apply(l.recs[:20]))
	wantDigest, err := want.Digest()
	require.NoError(t, err)

	for _, tc := range []struct {
		name      string
		stable    eventlog.Offset
		wantReset bool
	}{
		{"undo records reach back", 10, false},
		{"history too short: reset and replay", 25, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := chat.NewState(chat.NewMemStore())
			sm := NewStateMachine(state)
			syncs := 0
			sm.SetSync(func() error { syncs++; return nil })
			sm.SetStable(tc.stable)
			for i := range l.recs {
				require.NoError(t, sm.Apply(l.recs[i:i+1]))
			}
			assert.Equal(t, tc.wantReset, rollbackOrReset(t, sm, l.recs, 20))
			assert.Equal(t, 1, syncs, "the rollback or the reset is made durable")
			got, err := state.Digest()
			require.NoError(t, err)
			assert.Equal(t, wantDigest, got)
			require.NoError(t, state.Check())
		})
	}
	t.Run("a failed sync fails the rollback", func(t *testing.T) {
		state := chat.NewState(chat.NewMemStore())
		sm := NewStateMachine(state)
		boom := errors.New("disk gone")
		sm.SetSync(func() error { return boom })
		sm.SetStable(0)
		require.NoError(t, sm.Apply(l.recs))
		_, err := sm.RollbackTo(5)
		assert.ErrorIs(t, err, boom)
	})
}

func TestServer_MessageIDIsDerivedFromTheRequest(t *testing.T) {
	ts := startServer(t, nil)
	ts.user(t, "bob")
	alice := dialRaw(t, ts.addr, "alice-client")
	alice.mustCall(wire.OpRegister, wire.RegisterRequest{User: "alice", Password: "pw"}, nil)
	alice.mustCall(wire.OpLogin, wire.LoginRequest{User: "alice", Password: "pw"}, nil)
	var sent wire.SendResponse
	require.Nil(t, alice.call(wire.OpSend, wire.SendRequest{To: "bob", Body: "hi"}, &sent, 42))
	assert.Equal(t, chat.MessageID("alice-client", 42), sent.Message.ID,
		"any primary deciding this request assigns this id")
}
