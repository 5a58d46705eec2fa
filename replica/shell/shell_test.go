package shell

// These tests run three real Shells (goroutines, ticker, the real core) on
// MemoryLogs and an in-memory transport inside a synctest bubble, so the
// failure detector's timeouts pass in fake time: elections, replication,
// failover and catch-up are exercised deterministically and fast.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
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
	sm     StateMachine
	cancel context.CancelFunc
	done   chan error
	// free is the free disk space the node's guard sees (disk_test.go).
	free atomic.Uint64
}

// applied returns the client records node i's state machine applied.
func (nd *testNode) applied() []string {
	switch sm := nd.sm.(type) {
	case *listSM:
		return sm.clientRecords()
	case *failingSM:
		return sm.clientRecords()
	case *snapSM:
		return sm.clientRecords()
	}
	return nil
}

type testCluster struct {
	t     *testing.T
	net   *memNet
	nodes []*testNode
	ids   []replica.NodeID
	// snapshots, if set, configures snapshots on every node started
	// (snapshot_test.go).
	snapshots *snapshotConfig
}

type snapshotConfig struct {
	dirs                      []string
	every, retain, forkRetain uint64
}

func newTestCluster(t *testing.T, n int) *testCluster {
	return (&testCluster{t: t}).startAll(n, func() StateMachine { return &listSM{} })
}

// startAll starts n nodes on empty logs with state machines from newSM.
func (c *testCluster) startAll(n int, newSM func() StateMachine) *testCluster {
	t := c.t
	var tids []transport.NodeID
	for i := range n {
		c.ids = append(c.ids, replica.NodeID(i))
		tids = append(tids, transport.NodeID(i))
	}
	c.net = newMemNet(tids...)
	for i := range n {
		nd := &testNode{log: eventlog.NewMemoryLog(), sm: newSM()}
		nd.free.Store(1 << 40)
		c.nodes = append(c.nodes, nd)
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	return c
}

func (c *testCluster) start(i int) { c.startOn(i, c.nodes[i].log) }

// startOn starts node i on log (its MemoryLog, or a wrapper of it).
func (c *testCluster) startOn(i int, log Log) {
	nd := c.nodes[i]
	addrs := map[replica.NodeID]string{}
	for _, id := range c.ids {
		addrs[id] = fmt.Sprintf("127.0.0.1:%d", 7100+int(id))
	}
	sh, err := New(Config{
		Node:          replica.Config{ID: replica.NodeID(i), Peers: c.ids, HeartbeatTicks: 2, FailoverTicks: 20, Seed: 1},
		Log:           log,
		StateMachine:  nd.sm,
		Transport:     memEnd{net: c.net, id: transport.NodeID(i)},
		Addrs:         addrs,
		TickInterval:  10 * time.Millisecond,
		DiskFree:      func() (uint64, error) { return nd.free.Load(), nil },
		DiskReserve:   testReserve,
		SnapshotDir:   c.snapshotDir(i),
		SnapshotEvery: c.snapshotEvery(),
		RetainEvents:  c.snapshotRetain(),
		ForkRetain:    c.snapshotForkRetain(),
	})
	require.NoError(c.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	nd.shell, nd.cancel, nd.done = sh, cancel, make(chan error, 1)
	c.net.setDown(transport.NodeID(i), false)
	go func() { nd.done <- sh.Run(ctx) }()
}

func (c *testCluster) snapshotDir(i int) string {
	if c.snapshots == nil {
		return ""
	}
	return c.snapshots.dirs[i]
}

func (c *testCluster) snapshotEvery() uint64 {
	if c.snapshots == nil {
		return 0
	}
	return c.snapshots.every
}

func (c *testCluster) snapshotForkRetain() uint64 {
	if c.snapshots == nil {
		return 0
	}
	return c.snapshots.forkRetain
}

func (c *testCluster) snapshotRetain() uint64 {
	if c.snapshots == nil {
		return 0
	}
	return c.snapshots.retain
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
	require.NoError(c.t, <-nd.done, "node %d's Run", i)
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
		if got := c.nodes[i].applied(); len(got) >= len(want) {
			assert.Equal(c.t, want, got, "node %d applied", i)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("node %d applied %v, want %v; %v", i, c.nodes[i].applied(), want, c.statuses())
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

// A primary serves reads only under its lease: while every other ISR member
// keeps telling it that it follows it. When both backups go silent, the
// lease runs out (LeaseTicks) before the primary drops them from the ISR
// (FailoverTicks): in between, a new primary could have been elected on the
// other side, so reads are refused. Alone in its ISR it holds the lease
// again. A backup never passes the barrier.
func TestShell_ReadBarrierNeedsTheLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3)
		p := c.primary()
		require.NoError(t, c.propose(p, "a", 1))
		ctx := t.Context()
		require.Eventually(t, func() bool { return c.nodes[p].shell.ReadBarrier(ctx) == nil }, 5*time.Second, 10*time.Millisecond)
		var npe *replica.NotPrimaryError
		assert.ErrorAs(t, c.nodes[(p+1)%3].shell.ReadBarrier(ctx), &npe)

		for i := range 3 {
			if i != p {
				c.net.setDown(transport.NodeID(i), true)
			}
		}
		// Lease 15 ticks, failover 20: at 170 ms the lease is gone and the
		// backups are still in the ISR.
		time.Sleep(170 * time.Millisecond)
		st := c.nodes[p].shell.Status()
		require.Len(t, st.ISR, 3, "still in the ISR: %v", st.ISR)
		err := c.nodes[p].shell.ReadBarrier(ctx)
		require.ErrorIs(t, err, ErrNoLease)
		assert.Contains(t, err.Error(), "has not heard from in-sync replicas")

		require.Eventually(t, func() bool { return len(c.nodes[p].shell.Status().ISR) == 1 }, 5*time.Second, 10*time.Millisecond)
		require.Eventually(t, func() bool { return c.nodes[p].shell.ReadBarrier(ctx) == nil }, 5*time.Second, 10*time.Millisecond,
			"alone in its ISR, the primary holds the lease")
	})
}

// stallLog is a MemoryLog whose Append blocks while stalled: an fsync that
// hangs, or a process stopped in the middle of a write.
type stallLog struct {
	*eventlog.MemoryLog
	mu    sync.Mutex
	gate  chan struct{}
	entry chan struct{} // receives when an Append starts waiting at the gate
}

func (l *stallLog) stall() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gate = make(chan struct{})
	l.entry = make(chan struct{}, 1)
}

func (l *stallLog) resume() {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.gate)
	l.gate = nil
}

// Write stalls like Append.
func (l *stallLog) Write(b eventlog.Batch) error {
	l.mu.Lock()
	gate, entry := l.gate, l.entry
	l.mu.Unlock()
	if gate != nil && len(b.Records) > 0 {
		select {
		case entry <- struct{}{}:
		default:
		}
		<-gate
	}
	return l.MemoryLog.Write(b)
}

func (l *stallLog) Append(recs []eventlog.Record) error {
	l.mu.Lock()
	gate, entry := l.gate, l.entry
	l.mu.Unlock()
	if gate != nil {
		select {
		case entry <- struct{}{}:
		default:
		}
		<-gate
	}
	return l.MemoryLog.Append(recs)
}

// A primary whose loop stalls past the failure timeout with a proposal in
// its log (DESIGN.md: definite errors are definite): the backups elect
// another primary; when the stalled one resumes, the proposal it had taken
// is answered "outcome unknown", never "not primary", because its record
// may still commit; and proposals that were waiting to be taken meet a core
// that knows it was stopped and are refused as not primary, and never
// applied anywhere.
func TestShell_StalledPrimaryNeverSaysNotPrimaryForWhatItTook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3)
		p := c.primary()
		require.NoError(t, c.propose(p, "a", 1))
		for i := range 3 {
			c.waitApplied(i, []string{"a/1"})
		}
		// Restart the primary on a log that can stall.
		c.stop(p)
		sl := &stallLog{MemoryLog: c.nodes[p].log}
		c.nodes[p].log = nil
		c.startOn(p, sl)
		p = c.primary()
		if c.nodes[p].log != nil {
			t.Skip("another replica took over on restart; the scenario needs the stalling one as primary")
		}
		sl.stall()
		taken := make(chan error, 1)
		go func() { taken <- c.propose(p, "a", 2) }()
		<-sl.entry // the primary's loop is stuck writing a/2
		queued := make(chan error, 1)
		go func() { queued <- c.propose(p, "a", 3) }()
		time.Sleep(time.Second) // past the failure timeout: the others elect
		other := -1
		for i, nd := range c.nodes {
			if i != p && nd.shell.Status().Role == RolePrimary {
				other = i
			}
		}
		require.GreaterOrEqual(t, other, 0, "a new primary while the old one is stalled: %v", c.statuses())
		sl.resume()
		err2, err3 := <-taken, <-queued
		assert.ErrorIs(t, err2, ErrOutcomeUnknown, "a/2 is in the stalled primary's log")
		var npe *replica.NotPrimaryError
		assert.ErrorAs(t, err3, &npe, "a/3 was never taken: a definite refusal")
		require.NoError(t, c.propose(other, "b", 1))
		time.Sleep(time.Second)
		for i := range c.nodes {
			assert.NotContains(t, c.nodes[i].applied(), "a/3", "a definite refusal was applied on node %d", i)
		}
	})
}
