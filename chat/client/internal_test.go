// Tests of the client's internals that the fake cluster cannot reach
// deterministically: the repeat suppression of Listen, the bounded id set,
// and the merge of status answers.
package client

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
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
	// A backup's view: it knows nothing of its peers' logs.
	stale := []wire.ReplicaStatus{
		{ID: 0, Addr: "a:0", Role: wire.RoleDown, Epoch: 2},
		{ID: 1, Addr: "a:1", Role: wire.RoleBackup, Epoch: 3, LogEnd: 9, Commit: 8, InSync: true},
		{ID: 2, Addr: "a:2", Role: wire.RoleDown, Epoch: 2},
	}
	self2 := []wire.ReplicaStatus{
		{ID: 2, Addr: "a:2", Role: wire.RoleBackup, Epoch: 3, LogEnd: 5, Commit: 4, InSync: true, Waiting: "catching up"},
	}
	refused := &connError{addr: "a:1", err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	tests := []struct {
		name    string
		answers []statusAnswer
		want    []wire.ReplicaStatus
	}{
		{
			name: "all answer: each describes itself, in sync as the primary says",
			answers: []statusAnswer{
				{addr: "a:1", hello: wire.HelloOK{ServerID: 1, Role: wire.RoleBackup, Epoch: 3}, replicas: stale},
				{addr: "a:0", hello: wire.HelloOK{ServerID: 0, Role: wire.RolePrimary, Epoch: 3}, replicas: view},
				{addr: "a:2", hello: wire.HelloOK{ServerID: 2, Role: wire.RoleBackup, Epoch: 3}, replicas: self2},
			},
			want: []wire.ReplicaStatus{view[0], stale[1], withInSync(self2[0], false)},
		},
		{
			name: "servers down: their id and address, no numbers from the views",
			answers: []statusAnswer{
				{addr: "a:0", hello: wire.HelloOK{ServerID: 0, Role: wire.RolePrimary, Epoch: 3}, replicas: view},
				{addr: "a:1", err: refused},
				{addr: "a:2", err: context.DeadlineExceeded},
			},
			want: []wire.ReplicaStatus{
				view[0],
				{ID: 1, Addr: "a:1", Role: wire.RoleDown, Waiting: "connection refused"},
				{ID: 2, Addr: "a:2", Role: wire.RoleDown, Waiting: "no answer in time"},
			},
		},
		{
			name: "no primary answers: a backup's word on itself, nothing on the others",
			answers: []statusAnswer{
				{addr: "a:0", err: refused},
				{addr: "a:1", hello: wire.HelloOK{ServerID: 1, Role: wire.RoleBackup, Epoch: 3}, replicas: stale},
				{addr: "a:2", err: refused},
			},
			want: []wire.ReplicaStatus{
				{ID: 0, Addr: "a:0", Role: wire.RoleDown, Waiting: "connection refused"},
				stale[1],
				{ID: 2, Addr: "a:2", Role: wire.RoleDown, Waiting: "connection refused"},
			},
		},
		{
			name: "nobody answers",
			answers: []statusAnswer{
				{addr: "h:7", err: refused},
				{addr: "h:8", err: refused},
			},
			want: []wire.ReplicaStatus{
				{ID: 0, Addr: "h:7", Role: wire.RoleDown, Waiting: "connection refused"},
				{ID: 1, Addr: "h:8", Role: wire.RoleDown, Waiting: "connection refused"},
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
			assert.Equal(t, tt.want, mergeStatus(tt.answers, len(tt.answers)))
		})
	}
}

func TestUnavailableError_GroupsReasons(t *testing.T) {
	e := &UnavailableError{Replicas: []wire.ReplicaStatus{
		{ID: 0, Role: wire.RoleBackup, Waiting: "restarted; waiting to hear from replica 2 of its last ISR [0 1 2]"},
		{ID: 1, Role: wire.RoleBackup, Waiting: "restarted; waiting to hear from replica 2 of its last ISR [0 1 2]"},
		{ID: 2, Role: wire.RoleDown, Waiting: "connection refused"},
	}, Last: errors.New("connection to x: refused")}
	assert.Equal(t, "replicas 0, 1: restarted; waiting to hear from replica 2 of its last ISR [0 1 2]; replica 2: down (connection refused)", e.Error())
	assert.ErrorIs(t, e, e.Last)

	e.Replicas = []wire.ReplicaStatus{{ID: 0, Role: wire.RolePrimary}}
	assert.Equal(t, "replica 0: primary; last error: connection to x: refused", e.Error(), "a primary serves: the replicas do not explain it")
}

func withInSync(r wire.ReplicaStatus, inSync bool) wire.ReplicaStatus {
	r.InSync = inSync
	return r
}
