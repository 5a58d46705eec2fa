package chatsim

// Scripted scenarios of the chat state under forks: a fault-free simulated
// cluster driven by hand (in the style of replica/scenario_test.go), every
// step still checked by the simulator, and "converge" ending with the final
// checks (every acknowledged request found in every replica's chat state,
// with its acknowledged result) and chat.State.Check.

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/chat"
	"github.com/replichat/replichat/replica"
	"github.com/replichat/replichat/replica/replicatest"
)

// scene drives a cluster of three replicas whose clients are chat users.
type scene struct {
	t   *testing.T
	c   *replicatest.Cluster
	app *chatApp
	// seqs counts the requests made by each client (its last seq).
	seqs []uint64
}

func newScene(t *testing.T, clients int) *scene {
	t.Helper()
	app := newChatApp(clients)
	// Clients retry late, so that a request sent to one side of a
	// partition is acknowledged there, not retried on the other.
	opts := replicatest.Options{Seed: 7, Nodes: 3, Config: simConfig(), Partitions: true, Clients: clients,
		Net:        replicatest.NetworkOptions{DelayMinTicks: 1, DelayMeanTicks: 1, DelayMaxTicks: 4, FIFO: true},
		RetryTicks: 400, App: app, TraceLines: 20000}
	c, err := replicatest.NewCluster(opts)
	require.NoError(t, err)
	app.attach(c)
	c.Faults, c.Traffic = false, false
	s := &scene{t: t, c: c, app: app, seqs: make([]uint64, clients)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("trace (last lines):\n%s", c.Trace())
		}
	})
	return s
}

func (s *scene) tick(n int) {
	s.t.Helper()
	for range n {
		require.NoError(s.t, s.c.Step())
	}
}

// primary waits (up to 200 ticks) for a primary other than not and returns
// it.
func (s *scene) primary(not replica.NodeID) replica.NodeID {
	s.t.Helper()
	for range 200 {
		if p, ok := s.c.Primary(); ok && p != not {
			return p
		}
		s.tick(1)
	}
	s.t.Fatalf("no primary but n%d within 200 ticks", not)
	return 0
}

// request makes client i send its next request to node id with intent in
// (to: the recipient of a send, or ""), and returns it without waiting.
func (s *scene) request(i int, id replica.NodeID, in intent, to string) replicatest.ClientSeq {
	s.t.Helper()
	k := replicatest.ClientSeq{Client: fmt.Sprintf("c%d", i), Seq: s.seqs[i] + 1}
	s.app.script[k] = in
	if to != "" {
		s.app.scriptTo[k] = to
	}
	got, err := s.c.SubmitTo(i, id)
	require.NoError(s.t, err, "%v on n%d", k, id)
	require.Equal(s.t, k, got)
	s.seqs[i]++
	return k
}

// wait steps until no client in is waits for an acknowledgement (up to
// 600 ticks).
func (s *scene) wait(is ...int) {
	s.t.Helper()
	for range 600 {
		pending := false
		for _, i := range is {
			pending = pending || s.c.Pending(i)
		}
		if !pending {
			return
		}
		s.tick(1)
	}
	s.t.Fatalf("clients %v still wait after 600 ticks", is)
}

// do makes client i's next request on node id and waits until that node
// acknowledged it.
func (s *scene) do(i int, id replica.NodeID, in intent, to string) replicatest.ClientSeq {
	s.t.Helper()
	k := s.request(i, id, in, to)
	s.wait(i)
	require.True(s.t, s.c.AckedBy(i, id), "%v acknowledged by n%d", k, id)
	return k
}

func (s *scene) isolate(id replica.NodeID) {
	s.c.Tracef("SCRIPT isolate n%d", id)
	s.c.Net.Partition(map[replica.NodeID]int{id: 1})
}

func (s *scene) heal() {
	s.c.Tracef("SCRIPT heal")
	s.c.Net.Heal()
}

// converge runs the liveness phase, the final checks and chat.State.Check.
func (s *scene) converge() {
	s.t.Helper()
	require.NoError(s.t, s.c.Liveness(livenessMax))
	require.NoError(s.t, checkStates(s.c))
}

// state returns node id's chat state.
func (s *scene) state(id replica.NodeID) *chat.State { return s.c.Nodes[id].SM.(*chatState).st }

// The losses: a partition isolates the primary, which drops its
// backups from the ISR and acknowledges a client's sends alone, while the
// other side elects a primary on which the same client, and the others,
// make more requests than their dedup window keeps. After healing, the old
// primary truncates its side and re-submits the sends: on the winning side
// their seqs lie below the client's window, in a hole, and must be applied,
// not dropped as old.
func TestScenario_PartitionedPrimaryClientsPassTheDedupWindow(t *testing.T) {
	s := newScene(t, 3)
	s.app.sendOnly = true
	s.tick(60)
	p := s.primary(replica.None)
	for i := range 3 {
		s.do(i, p, intentSend, "") // registers
	}
	s.isolate(p)
	var lost []replicatest.ClientSeq
	for range 3 {
		lost = append(lost, s.do(0, p, intentSend, "c1")) // acknowledged by p alone
	}
	q := s.primary(p)
	rounds := chat.DedupWindow + 2*64
	for range rounds {
		for i := range 3 {
			s.request(i, q, intentSend, "")
		}
		s.wait(0, 1, 2)
	}
	s.heal()
	s.converge()
	require.Positive(t, s.c.Stats.Truncations, "the isolated primary must have truncated its side")
	assert.Zero(t, s.c.Stats.Reevaluated, "nothing here may be rejected")
	for _, k := range lost {
		want := s.c.Acked[k]
		require.NotEmpty(t, want, "%v acknowledged", k)
		for _, n := range s.c.Nodes {
			got, ok := n.SM.Result(k.Client, k.Seq)
			assert.True(t, ok && got == want, "n%d: %v answered %q, holds %q", n.ID, k, want, got)
		}
	}
	for _, n := range s.c.Nodes {
		max, err := s.state(n.ID).MaxSeq("c0")
		require.NoError(t, err)
		assert.Greater(t, max, lost[len(lost)-1].Seq+chat.DedupWindow+64, "c0's window passed the re-submitted seqs on n%d", n.ID)
	}
}

// Accounts registered on both sides of a fork: the isolated primary
// registers c1 while the other side registers c2 and c3, so the same user
// id names different accounts on each side. The losing side's records that
// name c1 (a send from it, a send to it, its account's deletion) are
// re-submitted to the winning side, where they must still mean c1: not c2,
// whose id it was there.
func TestScenario_AccountsRegisteredOnBothSidesOfAFork(t *testing.T) {
	s := newScene(t, 4)
	s.tick(60)
	p := s.primary(replica.None)
	s.do(0, p, intentSend, "") // c0 registers before the fork: user 1 everywhere
	s.isolate(p)
	s.do(1, p, intentSend, "") // c1 registers on the losing side: user 2 there
	fromC1 := s.do(1, p, intentSend, "c0")
	toC1 := s.do(0, p, intentSend, "c1")
	q := s.primary(p)
	s.do(2, q, intentSend, "")   // c2 registers on the winning side: user 2 there
	s.do(3, q, intentSend, "")   // c3: user 3
	s.do(2, q, intentSend, "c3") // c2 sends (from user 2)
	s.do(1, p, intentDeleteAccount, "")
	s.heal()
	s.converge()
	require.Positive(t, s.c.Stats.Truncations, "the isolated primary must have truncated its side")
	assert.Zero(t, s.c.Stats.Reevaluated, "every re-submitted record names accounts that exist")
	for _, n := range s.c.Nodes {
		st := s.state(n.ID)
		_, ok, err := st.User("c2")
		require.NoError(t, err)
		assert.True(t, ok, "n%d: c2's account survives c1's deletion", n.ID)
		// c1 registered again after converging (every client makes one
		// more request): a new account, which must not inherit the
		// deleted one's messages.
		c1, ok, err := st.User("c1")
		require.NoError(t, err)
		require.True(t, ok, "n%d: c1 registered again", n.ID)
		history, _, err := st.History(c1.ID, "", 0, chat.MaxQueryLimit)
		require.NoError(t, err)
		for _, k := range []replicatest.ClientSeq{fromC1, toC1} {
			got, _ := n.SM.Result(k.Client, k.Seq)
			assert.Equal(t, s.c.Acked[k], got, "n%d: %v", n.ID, k)
			var id uint64
			_, err := fmt.Sscanf(got, "sent %d", &id)
			require.NoError(t, err, "n%d: %v: %q", n.ID, k, got)
			for _, m := range history {
				assert.NotEqual(t, id, m.ID, "n%d: the new c1 sees %v", n.ID, k)
			}
		}
	}
}
