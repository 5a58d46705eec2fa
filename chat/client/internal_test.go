// Tests of the client's internals that the fake cluster cannot reach
// deterministically: the repeat suppression of Listen, the bounded id set,
// and the merge of status answers.
package client

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat/client/clienttest"
	"github.com/replichat/replichat/chat/wire"
)

func TestListener_HandleSuppressesRepeats(t *testing.T) {
	cl := clienttest.Start(t, 1)
	cl.AddUser("bob", "pw")
	cl.AddUser("alice", "pw")
	c, err := Dial(t.Context(), Config{Servers: cl.Addrs()})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Login(t.Context(), "bob", "pw")
	require.NoError(t, err)
	m1 := cl.Post("alice", "bob", "one")
	m2 := cl.Post("alice", "bob", "two")
	m3 := cl.Post("alice", "bob", "three")

	var handed []uint64
	l := listener{c: c, seen: newIDSet(8), fn: func(m wire.Message) error {
		handed = append(handed, m.ID)
		return nil
	}}
	require.NoError(t, l.handle(t.Context(), []wire.Message{m1, m2}))
	// m1 and m2 again, as after a reconnect that lost their ack.
	require.NoError(t, l.handle(t.Context(), []wire.Message{m1, m2, m3}))
	assert.Equal(t, []uint64{m1.ID, m2.ID, m3.ID}, handed)
	assert.Empty(t, cl.Queued("bob"))

	var acks int
	for _, r := range cl.Requests() {
		if r.Op == wire.OpAck {
			acks++
		}
	}
	assert.Equal(t, 2, acks, "repeats are acked again")

	// An error from fn stops the batch: what was handled is acked, the
	// rest is not.
	m4 := cl.Post("alice", "bob", "four")
	m5 := cl.Post("alice", "bob", "five")
	boom := errors.New("boom")
	l.fn = func(m wire.Message) error {
		if m.ID == m5.ID {
			return boom
		}
		return nil
	}
	err = l.handle(t.Context(), []wire.Message{m4, m5})
	var se *stopError
	require.ErrorAs(t, err, &se)
	assert.ErrorIs(t, se.err, boom)
	assert.Equal(t, []uint64{m5.ID}, cl.Queued("bob"))
}

func TestIDSet_ForgetsOldest(t *testing.T) {
	s := newIDSet(3)
	for _, id := range []uint64{1, 2, 3, 2, 4} {
		s.add(id)
	}
	assert.False(t, s.has(1), "oldest forgotten")
	for _, id := range []uint64{2, 3, 4} {
		assert.True(t, s.has(id), "id %d", id)
	}
	s.add(5)
	s.add(6)
	assert.False(t, s.has(2))
	assert.False(t, s.has(3))
	assert.True(t, s.has(4))
	assert.Len(t, s.ids, 3)
}

func TestMergeStatus(t *testing.T) {
	view := []wire.ReplicaStatus{
		{ID: 0, Addr: "a:0", Role: wire.RolePrimary, Epoch: 3, LogEnd: 10, Commit: 10, InSync: true},
		{ID: 1, Addr: "a:1", Role: wire.RoleBackup, Epoch: 3, LogEnd: 9, Commit: 9, InSync: true},
		{ID: 2, Addr: "a:2", Role: wire.RoleBackup, Epoch: 3, LogEnd: 4, Commit: 4, InSync: false, Waiting: "catching up"},
	}
	stale := []wire.ReplicaStatus{
		{ID: 0, Addr: "a:0", Role: wire.RoleDown, Epoch: 2},
		{ID: 1, Addr: "a:1", Role: wire.RoleBackup, Epoch: 3, LogEnd: 9, Commit: 8, InSync: true},
		{ID: 2, Addr: "a:2", Role: wire.RoleDown, Epoch: 2},
	}
	down := errors.New("refused")
	tests := []struct {
		name    string
		answers []statusAnswer
		want    []wire.ReplicaStatus
	}{
		{
			name: "all answer: each describes itself",
			answers: []statusAnswer{
				{addr: "a:1", hello: wire.HelloOK{ServerID: 1, Role: wire.RoleBackup}, replicas: stale},
				{addr: "a:0", hello: wire.HelloOK{ServerID: 0, Role: wire.RolePrimary}, replicas: view},
			},
			want: []wire.ReplicaStatus{view[0], stale[1], view[2]},
		},
		{
			name: "a configured server down keeps its id and the primary's view of it",
			answers: []statusAnswer{
				{addr: "a:0", hello: wire.HelloOK{ServerID: 0, Role: wire.RolePrimary}, replicas: view},
				{addr: "a:1", err: down},
				{addr: "a:2", err: down},
			},
			want: []wire.ReplicaStatus{view[0], withRole(view[1], wire.RoleDown), withRole(view[2], wire.RoleDown)},
		},
		{
			name: "nobody answers",
			answers: []statusAnswer{
				{addr: "h:7", err: down},
				{addr: "h:8", err: down},
			},
			want: []wire.ReplicaStatus{
				{ID: 0, Addr: "h:7", Role: wire.RoleDown},
				{ID: 1, Addr: "h:8", Role: wire.RoleDown},
			},
		},
		{
			name: "an answer without its own entry",
			answers: []statusAnswer{
				{addr: "x:1", hello: wire.HelloOK{ServerID: 5, Role: wire.RoleBackup, Epoch: 7}},
			},
			want: []wire.ReplicaStatus{{ID: 5, Addr: "x:1", Role: wire.RoleBackup, Epoch: 7}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, mergeStatus(tt.answers))
		})
	}
}

func withRole(r wire.ReplicaStatus, role string) wire.ReplicaStatus {
	r.Role = role
	return r
}
