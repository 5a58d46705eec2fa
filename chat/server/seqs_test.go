package server

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/wire"
	"github.com/replichat/replichat/eventlog"
)

// sendRecords returns register records for ann (offset 1) and then a send
// record per seq of client, ann to herself, at offsets 2, 3, ...
func sendRecords(t *testing.T, client string, seqs ...uint64) []eventlog.Record {
	t.Helper()
	st := chat.NewState(chat.NewMemStore())
	evs, err := chat.Decide(st, chat.Env{Now: 1, Argon: cheapArgon, Rand: zeroReader{}}, chat.Register{Name: "ann", Password: "pw"})
	require.NoError(t, err)
	typ, data, err := chat.EncodeEvent(evs[0])
	require.NoError(t, err)
	recs := []eventlog.Record{{Offset: 1, Epoch: 1, Type: typ, Data: data, ClientID: "reg", Seq: 1, Time: 1}}
	for i, seq := range seqs {
		typ, data, err := chat.EncodeEvent(&chat.SendEvent{MessageID: uint64(i + 1), FromUID: 1, ToUID: 1, Body: "x"})
		require.NoError(t, err)
		recs = append(recs, eventlog.Record{Offset: eventlog.Offset(i + 2), Epoch: 1, Type: typ, Data: data, ClientID: client, Seq: seq, Time: 2})
	}
	return recs
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestSeqTracker(t *testing.T) {
	recs := sendRecords(t, "bot", 3, 1, 5, 9, 10)
	tests := []struct {
		name string
		// before and after are applied before and after the tracker
		// learns "bot" (its first fresh call).
		before, after []eventlog.Record
		want          map[uint64]bool // seq -> fresh
	}{
		{"learned from the state", recs, nil,
			map[uint64]bool{1: false, 5: false, 10: false, 11: true, 1000: true}},
		{"raised by applies after learning", recs[:3], recs[3:],
			map[uint64]bool{1: false, 3: false, 9: false, 10: false, 11: true}},
		{"a client never seen", recs[:1], nil,
			map[uint64]bool{1: true, 2: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := chat.NewState(chat.NewMemStore())
			sm := NewStateMachine(state)
			srv, err := New(Config{State: state, Replicator: &fakeRole{}})
			require.NoError(t, err)
			assert.False(t, srv.seqs.fresh(state, "bot", 100), "not enabled: every request is looked up")
			sm.SetServer(srv)

			require.NoError(t, sm.Apply(tt.before))
			srv.seqs.fresh(state, "bot", 0) // learn
			if len(tt.after) > 0 {
				require.NoError(t, sm.Apply(tt.after))
			}
			for seq, want := range tt.want {
				assert.Equal(t, want, srv.seqs.fresh(state, "bot", seq), "seq %d", seq)
				_, applied, err := state.Result("bot", seq)
				require.NoError(t, err)
				if applied {
					assert.False(t, srv.seqs.fresh(state, "bot", seq), "applied seq %d must be looked up", seq)
				}
			}
		})
	}
}

func TestSeqTracker_FailedApplyStillRaises(t *testing.T) {
	state := chat.NewState(chat.NewMemStore())
	sm := NewStateMachine(state)
	srv, err := New(Config{State: state, Replicator: &fakeRole{}})
	require.NoError(t, err)
	sm.SetServer(srv)
	recs := sendRecords(t, "bot", 1, 2)
	require.NoError(t, sm.Apply(recs[:2]))
	require.True(t, srv.seqs.fresh(state, "bot", 2))
	// A gap makes Apply fail; the bound is raised anyway (too high is safe).
	gap := recs[2]
	gap.Offset = 10
	var gapErr *chat.GapError
	require.ErrorAs(t, sm.Apply([]eventlog.Record{gap}), &gapErr)
	assert.False(t, srv.seqs.fresh(state, "bot", 2))
}

func TestSeqTracker_StorageErrorMeansLookUp(t *testing.T) {
	store := &failingViewStore{Store: chat.NewMemStore()}
	state := chat.NewState(store)
	var tr seqTracker
	tr.enable()
	store.fail = errors.New("disk on fire")
	assert.False(t, tr.fresh(state, "bot", 1))
	store.fail = nil
	assert.True(t, tr.fresh(state, "bot", 1))
}

func TestSeqTracker_Bounded(t *testing.T) {
	state := chat.NewState(chat.NewMemStore())
	var tr seqTracker
	tr.enable()
	for i := range maxTrackedClients + 10 {
		require.True(t, tr.fresh(state, fmt.Sprint("c", i), 1))
	}
	assert.LessOrEqual(t, len(tr.max), maxTrackedClients)
}

type failingViewStore struct {
	chat.Store
	fail error
}

func (s *failingViewStore) View(fn func(chat.KV) error) error {
	if s.fail != nil {
		return s.fail
	}
	return s.Store.View(fn)
}

func TestServer_RetryAppendsNothing(t *testing.T) {
	ts := startServer(t, nil)
	ts.user(t, "bob")
	alice := dialRaw(t, ts.addr, "alice-client")
	alice.mustCall(wire.OpRegister, wire.RegisterRequest{User: "alice", Password: "pw"}, nil)
	alice.mustCall(wire.OpLogin, wire.LoginRequest{User: "alice", Password: "pw"}, nil)
	require.Nil(t, alice.call(wire.OpSend, wire.SendRequest{To: "bob", Body: "once"}, nil, 7))
	last := ts.log.Last()
	// Retries of an applied request, above and below other requests.
	require.Nil(t, alice.call(wire.OpSend, wire.SendRequest{To: "bob", Body: "once"}, nil, 7))
	require.Nil(t, alice.call(wire.OpRegister, wire.RegisterRequest{User: "alice", Password: "pw"}, nil, 1))
	assert.Equal(t, last, ts.log.Last(), "a retry is answered from the dedup table")
	require.Nil(t, alice.call(wire.OpSend, wire.SendRequest{To: "bob", Body: "new"}, nil, 8))
	assert.Greater(t, ts.log.Last(), last)
}
