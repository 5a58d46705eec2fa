package server

// Goal: what a metrics endpoint reads from the server is true. Every answered
// request reaches Config.ObserveRequest with its op and code (unknown ops
// folded into one label), Sessions counts the open client connections and
// the listening sessions as they come and go, and Rollbacks counts the
// state's rollbacks by kind.

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/wire"
	"github.com/replichat/replichat/eventlog"
)

type observedRequest struct {
	op   string
	code wire.Code
}

// requestRecorder collects ObserveRequest calls.
type requestRecorder struct {
	mu   sync.Mutex
	reqs []observedRequest
	took []time.Duration
}

func (r *requestRecorder) observe(op string, code wire.Code, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, observedRequest{op, code})
	r.took = append(r.took, took)
}

func (r *requestRecorder) take() ([]observedRequest, []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reqs, took := r.reqs, r.took
	r.reqs, r.took = nil, nil
	return reqs, took
}

func TestServer_ObserveRequest(t *testing.T) {
	rec := &requestRecorder{}
	ts := startServer(t, func(c *Config) { c.ObserveRequest = rec.observe })
	c := dialRaw(t, ts.addr, "observed")
	rec.take() // the handshake is not a request

	// Each call returns after its observation: the server observes a
	// request before it writes the response.
	c.mustCall(wire.OpRegister, wire.RegisterRequest{User: "ann", Password: "pw"}, nil)
	require.NotNil(t, c.call(wire.OpLogin, wire.LoginRequest{User: "ann", Password: "wrong"}, nil))
	c.mustCall(wire.OpLogin, wire.LoginRequest{User: "ann", Password: "pw"}, nil)
	c.mustCall(wire.OpPing, wire.PingRequest{}, nil)
	require.Equal(t, wire.CodeUnknownOp, c.call("frobnicate", struct{}{}, nil).Code)
	require.Equal(t, wire.CodeBadRequest, c.call(wire.OpHello, wire.Hello{}, nil).Code)

	reqs, took := rec.take()
	assert.Equal(t, []observedRequest{
		{wire.OpRegister, CodeOK},
		{wire.OpLogin, wire.CodeWrongPassword},
		{wire.OpLogin, CodeOK},
		{wire.OpPing, CodeOK},
		{OpUnknown, wire.CodeUnknownOp},
		{wire.OpHello, wire.CodeBadRequest},
	}, reqs)
	for _, d := range took {
		assert.GreaterOrEqual(t, d, time.Duration(0))
	}
	assert.Greater(t, took[0], time.Duration(0), "a register commits through the log: it takes time")
}

func TestServer_ObserveRequestUnset(t *testing.T) {
	ts := startServer(t, nil)
	c := dialRaw(t, ts.addr, "unobserved")
	c.mustCall(wire.OpPing, wire.PingRequest{}, nil) // nothing to call: no panic
}

func TestServer_Sessions(t *testing.T) {
	ts := startServer(t, nil)
	assert.Equal(t, Sessions{}, ts.srv.Sessions())
	alice := ts.user(t, "alice")
	bob := ts.user(t, "bob")
	// A client connection counts from its first byte, so by the handshake.
	assert.Equal(t, Sessions{Clients: 2}, ts.srv.Sessions())

	bob.mustCall(wire.OpListen, wire.ListenRequest{}, nil)
	assert.Equal(t, Sessions{Clients: 2, Listening: 1}, ts.srv.Sessions())
	bob2 := ts.user(t, "bob")
	bob2.mustCall(wire.OpListen, wire.ListenRequest{}, nil)
	assert.Equal(t, Sessions{Clients: 3, Listening: 2}, ts.srv.Sessions(), "two sessions of one user are two")

	bob.conn.Close()
	require.Eventually(t, func() bool { return ts.srv.Sessions() == Sessions{Clients: 2, Listening: 1} },
		5*time.Second, time.Millisecond, "got %+v", ts.srv.Sessions())
	alice.conn.Close()
	bob2.conn.Close()
	require.Eventually(t, func() bool { return ts.srv.Sessions() == Sessions{} },
		5*time.Second, time.Millisecond, "got %+v", ts.srv.Sessions())
}

func TestStateMachine_Rollbacks(t *testing.T) {
	l := &recLog{t: t}
	l.register("ann")
	for seq := uint64(1); seq <= 30; seq++ {
		l.send("c", seq, 1, 1)
	}
	sm := NewStateMachine(chat.NewState(chat.NewMemStore()))
	assert.Equal(t, RollbackCounts{}, sm.Rollbacks())
	sm.SetStable(10)
	applyEach(t, sm, l.recs)
	require.False(t, rollbackOrReset(t, sm, l.recs, 20), "undo records reach back to 10")
	assert.Equal(t, RollbackCounts{Undone: 1}, sm.Rollbacks())

	sm = NewStateMachine(chat.NewState(chat.NewMemStore()))
	sm.SetStable(25)
	applyEach(t, sm, l.recs)
	require.True(t, rollbackOrReset(t, sm, l.recs, 20), "undo records from 25 on: reset")
	assert.Equal(t, RollbackCounts{Reset: 1}, sm.Rollbacks(), "the undo that failed is not counted")
}

// applyEach applies recs one batch each, as a backup following closely does.
func applyEach(t *testing.T, sm *StateMachine, recs []eventlog.Record) {
	t.Helper()
	for i := range recs {
		require.NoError(t, sm.Apply(recs[i:i+1]))
	}
}
