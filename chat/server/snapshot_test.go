package server

// Goal: the state machine is a shell.Snapshotter whose snapshots are
// consistent at the offset they report though applying goes on, on both
// stores; a restore reports the offset it covers; exactly-once holds across
// a snapshot (its dedup records answer a retry of a request it covers,
// which is never decided again, even by a server that had learned the
// client's sequence before); and a server with clients connected follows
// an install: its sessions are closed, and after they log in again their
// pushes come from the restored state.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/chat/chatdb"
	"github.com/replichat/replichat/chat/wire"
	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica/shell"
)

var _ shell.Snapshotter = (*StateMachine)(nil)

// stores are the two chat.Store implementations.
func stores(t *testing.T) map[string]func() chat.Store {
	return map[string]func() chat.Store{
		"memory": func() chat.Store { return chat.NewMemStore() },
		"badger": func() chat.Store {
			db, err := chatdb.Open(t.TempDir(), chatdb.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			return db.Store()
		},
	}
}

func digestOf(t *testing.T, st *chat.State) []byte {
	t.Helper()
	d, err := st.Digest()
	require.NoError(t, err)
	return d
}

func TestStateMachine_SnapshotConsistentWhileApplying(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			l := &recLog{t: t}
			l.register("ann")
			l.register("bob")
			for i := range 600 {
				l.send("c", uint64(i+1), 1+uint64(i%2), 2-uint64(i%2))
			}
			sm := NewStateMachine(chat.NewState(open()))
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := 0; i < len(l.recs); i += 7 {
					assert.NoError(t, sm.Apply(l.recs[i:min(i+7, len(l.recs))]))
				}
			})
			type taken struct {
				off  eventlog.Offset
				data []byte
			}
			var snaps []taken
			for range 8 {
				var buf bytes.Buffer
				off, err := sm.WriteSnapshot(&buf)
				require.NoError(t, err)
				snaps = append(snaps, taken{off, buf.Bytes()})
			}
			wg.Wait()
			var last eventlog.Offset
			for _, s := range snaps {
				assert.GreaterOrEqual(t, s.off, last, "offsets only grow")
				last = s.off
				want := chat.NewState(chat.NewMemStore())
				require.NoError(t, want.Apply(l.recs[:s.off]))
				dst := NewStateMachine(chat.NewState(open()))
				off, err := dst.RestoreSnapshot(bytes.NewReader(s.data))
				require.NoError(t, err)
				assert.Equal(t, s.off, off, "the restore reports the offset the snapshot covers")
				assert.Equal(t, digestOf(t, want), digestOf(t, dst.state), "the snapshot at %d is the state at %d", s.off, s.off)
				// Snapshot + replay == replay from zero.
				require.NoError(t, dst.Apply(l.recs[s.off:]))
				full := chat.NewState(chat.NewMemStore())
				require.NoError(t, full.Apply(l.recs))
				assert.Equal(t, digestOf(t, full), digestOf(t, dst.state))
			}
		})
	}
}

// stubReplicator is a primary that commits nothing: it counts the
// proposals it is asked for and refuses them.
type stubReplicator struct{ proposals atomic.Int64 }

func (r *stubReplicator) Propose(context.Context, []eventlog.Record) (eventlog.Offset, error) {
	r.proposals.Add(1)
	return 0, fmt.Errorf("%w: a stub", ErrUnavailable)
}

func (r *stubReplicator) Status() Status {
	return Status{Role: wire.RolePrimary, Replicas: []wire.ReplicaStatus{{Role: wire.RolePrimary, InSync: true}}}
}

// startStubServer serves an empty MemStore state whose records come only
// from snapshots.
func startStubServer(t *testing.T) (*Server, *StateMachine, *stubReplicator, string) {
	t.Helper()
	state := chat.NewState(chat.NewMemStore())
	sm := NewStateMachine(state)
	repl := &stubReplicator{}
	srv, err := New(Config{State: state, Replicator: repl, Argon: cheapArgon})
	require.NoError(t, err)
	sm.SetServer(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(ctx, ln) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return srv, sm, repl, ln.Addr().String()
}

func snapshotOf(t *testing.T, sm *StateMachine) []byte {
	t.Helper()
	var buf bytes.Buffer
	_, err := sm.WriteSnapshot(&buf)
	require.NoError(t, err)
	return buf.Bytes()
}

// closed reports whether c's connection was closed by the server.
func closed(c *rawClient) bool {
	c.conn.NetConn().SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		f, err := c.conn.ReadFrame()
		if err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
		if f.Kind != wire.KindPush {
			return false
		}
	}
}

func TestStateMachine_InstallIntoServerWithClients(t *testing.T) {
	// The primary whose state is snapshotted.
	a := startServer(t, nil)
	ann := dialRaw(t, a.addr, "ann-client")
	ann.mustCall(wire.OpRegister, wire.RegisterRequest{User: "ann", Password: "pw"}, nil) // seq 1
	ann.mustCall(wire.OpLogin, wire.LoginRequest{User: "ann", Password: "pw"}, nil)
	a.user(t, "bob")
	var m1 wire.SendResponse
	ann.mustCall(wire.OpSend, wire.SendRequest{To: "bob", Body: "one"}, &m1) // seq 2
	first := snapshotOf(t, a.sm)

	// A server that has seen nothing of it. ann's client tries a request
	// there first: that server learns the client's sequence (nothing
	// applied) and proposes it (refused).
	_, b, repl, addr := startStubServer(t)
	early := dialRaw(t, addr, "ann-client")
	werr := early.call(wire.OpRegister, wire.RegisterRequest{User: "zed", Password: "pw"}, nil, 3)
	require.NotNil(t, werr)
	assert.Equal(t, int64(1), repl.proposals.Load())

	off, err := b.RestoreSnapshot(bytes.NewReader(first))
	require.NoError(t, err)
	assert.Equal(t, a.state.Applied(), off)
	assert.True(t, closed(early), "a session on the replaced state is closed")

	// bob listens on the restored state: the queued message is pushed.
	bob := dialRaw(t, addr, "bob-b")
	bob.mustCall(wire.OpLogin, wire.LoginRequest{User: "bob", Password: "pw-bob"}, nil)
	bob.mustCall(wire.OpListen, wire.ListenRequest{}, nil)
	assert.Equal(t, "one", bob.nextPush().Body)

	// More on the primary, a second snapshot installed under bob's feet.
	var m2 wire.SendResponse
	ann.mustCall(wire.OpSend, wire.SendRequest{To: "bob", Body: "two"}, &m2) // seq 3
	_, err = b.RestoreSnapshot(bytes.NewReader(snapshotOf(t, a.sm)))
	require.NoError(t, err)
	assert.True(t, closed(bob), "the listening session is closed")
	bob = dialRaw(t, addr, "bob-b")
	bob.mustCall(wire.OpLogin, wire.LoginRequest{User: "bob", Password: "pw-bob"}, nil)
	bob.mustCall(wire.OpListen, wire.ListenRequest{}, nil)
	assert.Equal(t, "one", bob.nextPush().Body, "not acknowledged: pushed again, from the restored queue")
	assert.Equal(t, "two", bob.nextPush().Body)

	// Exactly once across the snapshot: ann's client retries its seq 3 (and
	// 2) here. The answer is the original, from the snapshot's dedup
	// records, and nothing is proposed: the server relearned the client's
	// sequence from the restored state.
	again := dialRaw(t, addr, "ann-client")
	again.mustCall(wire.OpLogin, wire.LoginRequest{User: "ann", Password: "pw"}, nil)
	var r2, r1 wire.SendResponse
	require.Nil(t, again.call(wire.OpSend, wire.SendRequest{To: "bob", Body: "two"}, &r2, 3))
	require.Nil(t, again.call(wire.OpSend, wire.SendRequest{To: "bob", Body: "one"}, &r1, 2))
	assert.Equal(t, m2.Message.ID, r2.Message.ID)
	assert.Equal(t, m1.Message.ID, r1.Message.ID)
	assert.Equal(t, int64(1), repl.proposals.Load(), "a request the snapshot covers is not proposed again")
}
