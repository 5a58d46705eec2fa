package server

// Test harness: a Server on 127.0.0.1 over a one-replica runtime backed by a
// MemoryLog and a MemStore, and a minimal raw-protocol client, so that these
// tests see exactly the bytes a real client would.

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/wire"
	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
	"github.com/replichat/replichat/replica/shell"
)

// cheapArgon keeps password hashing fast in tests; the cost is carried in
// each hash, so nothing else changes.
var cheapArgon = chat.ArgonParams{Time: 1, MemoryKiB: 64, Threads: 1}

type testServer struct {
	addr  string
	srv   *Server
	sm    *StateMachine
	state *chat.State
	log   *eventlog.MemoryLog
	repl  *fakeRole
}

// fakeRole wraps a one-replica shell and can pretend to be a backup.
type fakeRole struct {
	r *shell.Shell

	mu      sync.Mutex
	backup  bool
	waiting string
}

func (f *fakeRole) Propose(ctx context.Context, recs []eventlog.Record) (eventlog.Offset, error) {
	f.mu.Lock()
	backup := f.backup
	f.mu.Unlock()
	if backup {
		return 0, ErrNotPrimary
	}
	return f.r.Propose(ctx, recs)
}

func (f *fakeRole) epoch() uint64  { return f.r.Status().Epoch }
func (f *fakeRole) commit() uint64 { return f.r.Status().Commit }

func (f *fakeRole) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	role := wire.RolePrimary
	if f.backup {
		role = wire.RoleBackup
	}
	if !f.backup && f.r.Status().Role != shell.RolePrimary {
		role = wire.RoleBackup // the shell has not taken office yet
	}
	return Status{ID: 0, Role: role, Epoch: f.epoch(), Primary: "127.0.0.1:1", Waiting: f.waiting,
		Replicas: []wire.ReplicaStatus{{ID: 0, Addr: "127.0.0.1:1", Role: role, Epoch: f.epoch(),
			LogEnd: f.commit(), Commit: f.commit(), InSync: true}}}
}

func (f *fakeRole) setBackup(backup bool, waiting string) {
	f.mu.Lock()
	f.backup, f.waiting = backup, waiting
	f.mu.Unlock()
}

func startServer(t testing.TB, mod func(*Config)) *testServer {
	t.Helper()
	log := eventlog.NewMemoryLog()
	state := chat.NewState(chat.NewMemStore())
	sm := NewStateMachine(state)
	repl, err := shell.New(shell.Config{
		Node: replica.Config{ID: 0, Peers: []replica.NodeID{0}}, Log: log, StateMachine: sm,
		Transport: shell.NoTransport{}, TickInterval: 10 * time.Millisecond,
	})
	require.NoError(t, err)
	role := &fakeRole{r: repl}
	cfg := Config{State: state, Replicator: role, Argon: cheapArgon}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	sm.SetServer(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { repl.Run(ctx) })
	wg.Go(func() { srv.Serve(ctx, ln) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	require.Eventually(t, func() bool { return repl.Status().Role == shell.RolePrimary }, 5*time.Second, time.Millisecond)
	return &testServer{addr: ln.Addr().String(), srv: srv, sm: sm, state: state, log: log, repl: role}
}

// rawClient speaks the wire protocol directly.
type rawClient struct {
	t      testing.TB
	conn   *wire.Conn
	nextID uint64
	seq    uint64
	pushes []wire.Frame // pushes read while waiting for a response
}

func dialRaw(t testing.TB, addr, clientID string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	c := &rawClient{t: t, conn: wire.NewConn(nc, 0), nextID: 1}
	t.Cleanup(func() { c.conn.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err = c.conn.Handshake(ctx, wire.Hello{Role: wire.RoleClient, ClientID: clientID, Software: "test"})
	require.NoError(t, err)
	c.nextID = 2
	return c
}

// call sends a request and returns the response body decoded into out, or
// the error response. Mutating ops get the next seq unless seq is given.
func (c *rawClient) call(op string, body, out any, seq ...uint64) *wire.Error {
	c.t.Helper()
	var s uint64
	if wire.Mutating(op) {
		if len(seq) > 0 {
			s = seq[0]
		} else {
			c.seq++
			s = c.seq
		}
	}
	req, err := wire.NewRequest(c.nextID, op, s, body)
	require.NoError(c.t, err)
	c.nextID++
	c.conn.NetConn().SetDeadline(time.Now().Add(10 * time.Second))
	require.NoError(c.t, c.conn.WriteFrame(req))
	for {
		f, err := c.conn.ReadFrame()
		require.NoError(c.t, err, "reading the response to %s", op)
		if f.Kind == wire.KindPush {
			c.pushes = append(c.pushes, f)
			continue
		}
		require.Equal(c.t, req.ID, f.ID, "response id")
		if f.Error != nil {
			return f.Error
		}
		if out != nil {
			require.NoError(c.t, wire.Decode(f.Body, out))
		}
		return nil
	}
}

func (c *rawClient) mustCall(op string, body, out any) {
	c.t.Helper()
	if werr := c.call(op, body, out); werr != nil {
		c.t.Fatalf("%s: %v", op, werr)
	}
}

// nextPush returns the next pushed message, reading frames until one comes.
func (c *rawClient) nextPush() wire.Message {
	c.t.Helper()
	if len(c.pushes) == 0 {
		c.conn.NetConn().SetReadDeadline(time.Now().Add(5 * time.Second))
		f, err := c.conn.ReadFrame()
		require.NoError(c.t, err, "waiting for a push")
		require.Equal(c.t, wire.KindPush, f.Kind, "frame %+v", f)
		c.pushes = append(c.pushes, f)
	}
	f := c.pushes[0]
	c.pushes = c.pushes[1:]
	require.Equal(c.t, wire.PushMessage, f.Op)
	var m wire.Message
	require.NoError(c.t, wire.Decode(f.Body, &m))
	return m
}

// user registers and logs in a fresh client as name.
func (ts *testServer) user(t testing.TB, name string) *rawClient {
	t.Helper()
	c := dialRaw(t, ts.addr, "client-"+name+fmt.Sprint(time.Now().UnixNano()))
	if werr := c.call(wire.OpRegister, wire.RegisterRequest{User: name, Password: "pw-" + name}, nil); werr != nil {
		require.Equal(t, wire.CodeUserExists, werr.Code, "register %s: %v", name, werr)
	}
	c.mustCall(wire.OpLogin, wire.LoginRequest{User: name, Password: "pw-" + name}, nil)
	return c
}
