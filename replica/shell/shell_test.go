package shell

// These tests run three real Shells (goroutines, ticker, the real core) on
// MemoryLogs and an in-memory transport inside a synctest bubble, so the
// failure detector's timeouts pass in fake time: elections, replication,
// failover and catch-up are exercised deterministically and fast.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
	"github.com/replichat/replichat/replica/transport"
)

// memNet delivers messages between nodes through buffered channels. A down
// node neither sends nor receives.
type memNet struct {
	mu     sync.Mutex
	inbox  map[transport.NodeID]chan transport.Inbound
	downed map[transport.NodeID]bool
}

func newMemNet(ids ...transport.NodeID) *memNet {
	n := &memNet{inbox: map[transport.NodeID]chan transport.Inbound{}, downed: map[transport.NodeID]bool{}}
	for _, id := range ids {
		n.inbox[id] = make(chan transport.Inbound, 4096)
	}
	return n
}

func (n *memNet) setDown(id transport.NodeID, down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.downed[id] = down
	if down { // a crashed process's socket buffers are gone
		for {
			select {
			case <-n.inbox[id]:
				continue
			default:
			}
			break
		}
	}
}

type memEnd struct {
	net *memNet
	id  transport.NodeID
}

func (e memEnd) Send(to transport.NodeID, msg []byte) bool {
	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	if e.net.downed[e.id] || e.net.downed[to] {
		return false
	}
	select {
	case e.net.inbox[to] <- transport.Inbound{From: e.id, Msg: append([]byte(nil), msg...)}:
		return true
	default:
		return false
	}
}

func (e memEnd) Inbox() <-chan transport.Inbound { return e.net.inbox[e.id] }

// listSM records applied records; it is the state machine of these tests.
type listSM struct {
	mu   sync.Mutex
	recs []eventlog.Record
}

func (m *listSM) Apply(recs []eventlog.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		if want := eventlog.Offset(len(m.recs) + 1); r.Offset != want {
			return fmt.Errorf("apply offset %d, want %d", r.Offset, want)
		}
		m.recs = append(m.recs, r)
	}
	return nil
}

func (m *listSM) Applied() (eventlog.Offset, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return eventlog.Offset(len(m.recs)), nil
}

func (m *listSM) Reset() error {
	m.mu.Lock()
	m.recs = nil
	m.mu.Unlock()
	return nil
}

// clientRecords are the client records m applied, as "client/seq" strings.
func (m *listSM) clientRecords() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, r := range m.recs {
		if r.ClientID != "" {
			out = append(out, fmt.Sprintf("%s/%d", r.ClientID, r.Seq))
		}
	}
	return out
}

type testNode struct {
	shell  *Shell
	log    *eventlog.MemoryLog
	sm     *listSM
	cancel context.CancelFunc
	done   chan error
}

type testCluster struct {
	t     *testing.T
	net   *memNet
	nodes []*testNode
	ids   []replica.NodeID
}

func newTestCluster(t *testing.T, n int) *testCluster {
	c := &testCluster{t: t}
	var tids []transport.NodeID
	for i := range n {
		c.ids = append(c.ids, replica.NodeID(i))
		tids = append(tids, transport.NodeID(i))
	}
	c.net = newMemNet(tids...)
	for i := range n {
		c.nodes = append(c.nodes, &testNode{log: eventlog.NewMemoryLog(), sm: &listSM{}})
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	return c
}

func (c *testCluster) start(i int) {
	nd := c.nodes[i]
	addrs := map[replica.NodeID]string{}
	for _, id := range c.ids {
		addrs[id] = fmt.Sprintf("127.0.0.1:%d", 7100+int(id))
	}
	sh, err := New(Config{
		Node:         replica.Config{ID: replica.NodeID(i), Peers: c.ids, HeartbeatTicks: 2, FailoverTicks: 20, Seed: 1},
		Log:          nd.log,
		StateMachine: nd.sm,
		Transport:    memEnd{net: c.net, id: transport.NodeID(i)},
		Addrs:        addrs,
		TickInterval: 10 * time.Millisecond,
	})
	require.NoError(c.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	nd.shell, nd.cancel, nd.done = sh, cancel, make(chan error, 1)
	c.net.setDown(transport.NodeID(i), false)
	go func() { nd.done <- sh.Run(ctx) }()
}

// stop crashes node i: its loop ends, its messages in flight are lost, and
// its log keeps what was written (the MemoryLog is its disk).
func (c *testCluster) stop(i int) {
	nd := c.nodes[i]
	if nd.cancel == nil {
		return
	}
	c.net.setDown(transport.NodeID(i), true)
	nd.cancel()
	require.NoError(c.t, <-nd.done)
	nd.cancel = nil
}

// primary waits (in fake time) until exactly one running node is primary.
func (c *testCluster) primary() int {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		found := -1
		for i, nd := range c.nodes {
			if nd.cancel != nil && nd.shell.Status().Role == RolePrimary {
				if found >= 0 {
					found = -2
					break
				}
				found = i
			}
		}
		if found >= 0 {
			return found
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("no single primary within 30s: %v", c.statuses())
	return -1
}

func (c *testCluster) statuses() []string {
	var out []string
	for i, nd := range c.nodes {
		if nd.cancel == nil {
			out = append(out, fmt.Sprintf("%d: down", i))
			continue
		}
		st := nd.shell.Status()
		out = append(out, fmt.Sprintf("%d: %s epoch=%d end=%d commit=%d waiting=%q", i, st.Role, st.Epoch, st.LogEnd, st.Commit, st.Waiting))
	}
	return out
}

func (c *testCluster) propose(i int, client string, seq uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.nodes[i].shell.Propose(ctx, []eventlog.Record{{Type: "test.op", ClientID: client, Seq: seq, Data: []byte("x")}})
	return err
}

// waitApplied waits until node i applied want client records.
func (c *testCluster) waitApplied(i int, want []string) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if got := c.nodes[i].sm.clientRecords(); len(got) >= len(want) {
			assert.Equal(c.t, want, got, "node %d applied", i)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("node %d applied %v, want %v; %v", i, c.nodes[i].sm.clientRecords(), want, c.statuses())
}

func TestShell_ReplicatesToAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3)
		p := c.primary()
		var want []string
		for seq := uint64(1); seq <= 20; seq++ {
			require.NoError(t, c.propose(p, "a", seq))
			want = append(want, fmt.Sprintf("a/%d", seq))
		}
		for i := range 3 {
			c.waitApplied(i, want)
		}
		// A backup refuses proposals and names the primary.
		b := (p + 1) % 3
		err := c.propose(b, "a", 99)
		var npe *replica.NotPrimaryError
		require.ErrorAs(t, err, &npe)
		assert.Equal(t, replica.NodeID(p), npe.Primary)
		st := c.nodes[b].shell.Status()
		assert.Equal(t, fmt.Sprintf("127.0.0.1:%d", 7100+p), st.PrimaryAddr)
		samples, next, _ := c.nodes[p].shell.LagSamples(0, 1000)
		assert.NotEmpty(t, samples, "the primary records lag samples for its backups")
		assert.Equal(t, samples[len(samples)-1].Seq, next)
		for _, s := range samples {
			assert.GreaterOrEqual(t, s.DurableAt, s.AppendedAt)
		}
	})
}

func TestShell_FailoverAndCatchUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3)
		p := c.primary()
		require.NoError(t, c.propose(p, "a", 1))
		want := []string{"a/1"}
		for i := range 3 {
			c.waitApplied(i, want)
		}
		c.stop(p)
		p2 := c.primary()
		require.NotEqual(t, p, p2)
		require.NoError(t, c.propose(p2, "a", 2))
		want = append(want, "a/2")
		// The old primary restarts on its disk, catches up and rejoins.
		c.start(p)
		for i := range 3 {
			c.waitApplied(i, want)
		}
		assert.Equal(t, p2, c.primary(), "a restarted replica does not disturb the primary")
	})
}

func TestShell_ProposeWhenStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 1)
		p := c.primary()
		require.NoError(t, c.propose(p, "a", 1))
		c.stop(p)
		assert.ErrorIs(t, c.propose(p, "a", 2), ErrStopped)
	})
}
