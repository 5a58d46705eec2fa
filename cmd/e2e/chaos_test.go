package e2e

// Chaos tests: the faults of issue 8 made from outside a real cluster, with
// a fault-injecting TCP proxy between the replicas (bench/netfault) that the
// test controls, SIGKILL, SIGSTOP and a wiped data directory, under a
// closed-loop load of chaosUsers client-library users (and raw wire clients)
// sending uniquely tagged messages to each other. Each scenario makes its
// faults for 10-15 s, heals, lets the load run a moment longer, stops it,
// waits for the replicas to converge and stay quiet, and then checks from
// the outside (chaos_harness_test.go, analyzeChaos):
//
//   - every acknowledged send is present exactly once, under its
//     acknowledged id, in the sender's and the recipient's history, and
//     applied once in the log;
//   - no send refused with a definite error is present or applied;
//   - a send of unknown outcome is present at most once;
//   - nothing is present that was not sent; no request or message id is
//     applied twice;
//   - the three logs are identical, with equal state digests (chatreplay).
//
// The counts (acked, definite, unknown, missing, duplicated, ...) and the
// first few violations of each kind are logged, so that a failing run says
// how much was lost. Each scenario logs its seed; REPLICHAT_CHAOS_SEED
// repeats its random choices.
//
// Timing: chatdArgs' heartbeat of 100ms and failure timeout of 1s, so that
// every partition and pause here (2-5 s) outlasts the failure timeout
// several times over, while the CPU starvation of two cores under -race is
// not mistaken for a crash too often.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/bench/cluster"
	"github.com/replichat/replichat/bench/netfault"
	"github.com/replichat/replichat/chat/wire"
)

// faultPhase is how long each scenario makes faults.
const faultPhase = 12 * time.Second

// TestChaos_PartitionPrimary isolates the primary from both backups (its
// clients still reach it, and the backups' clients them) for 2-5 s, heals,
// and does it again with whoever is primary then, until faultPhase is over.
// Each side can presume the other crashed and acknowledge writes: the log
// forks, and the losing side must re-submit what it truncates.
func TestChaos_PartitionPrimary(t *testing.T) {
	t.Parallel()
	partitionRounds(t, 2*time.Second, 5*time.Second, func(ch *chaos) string {
		p := ch.primary()
		require.GreaterOrEqual(t, p, 0, "no primary before a partition")
		ch.p.Isolate(p)
		return fmt.Sprintf("primary %d isolated from both backups", p)
	})
}

// TestChaos_IsolateBackup isolates one backup (a different one each round
// when possible) for 2-5 s at a time.
func TestChaos_IsolateBackup(t *testing.T) {
	t.Parallel()
	partitionRounds(t, 2*time.Second, 5*time.Second, func(ch *chaos) string {
		p := ch.primary()
		require.GreaterOrEqual(t, p, 0, "no primary before a partition")
		b := others(p)[ch.rng.IntN(2)]
		ch.p.Isolate(b)
		return fmt.Sprintf("backup %d isolated (primary %d)", b, p)
	})
}

// TestChaos_SplitZero splits the cluster {0} | {1, 2} for 3-5 s at a time.
func TestChaos_SplitZero(t *testing.T) {
	t.Parallel()
	partitionRounds(t, 3*time.Second, 5*time.Second, func(ch *chaos) string {
		primary := ch.primary()
		ch.p.Partition([]int{0}, []int{1, 2})
		return fmt.Sprintf("{0} | {1,2} (primary was %d)", primary)
	})
}

// partitionRounds runs a chaos scenario whose fault phase repeats: cut
// (which describes the partition it made) held for a random time in [lo,
// hi], healed, then 1-2 s of healed network.
func partitionRounds(t *testing.T, lo, hi time.Duration, cut func(*chaos) string) {
	ch := startChaos(t, chaosOptions{raw: 4})
	ch.waitAckedMore(300)
	ch.phase(faultPhase, func() {
		d := ch.between(lo, hi)
		what := cut(ch)
		ch.logf("partition: %s for %v", what, d)
		ch.sleep(d)
		ch.p.Heal()
		ch.logf("partition healed; sends %s", ch.outcomeLine())
		ch.sleep(ch.between(time.Second, 2*time.Second))
	})
	require.Positive(t, ch.heldBytes(), "harness: the partitions held no replica traffic")
	ch.finish()
}

// flap runs netfault.Flap on the replicas' links for d, in a goroutine of
// its own, with a random source of its own (seeded from the scenario's),
// and returns a function that waits for it and logs what it did.
func (ch *chaos) flap(d time.Duration) (wait func()) {
	ctx, cancel := context.WithTimeout(ch.t.Context(), d)
	rng := rand.New(rand.NewPCG(ch.seed, 0x666c6170))
	var (
		evs []netfault.FlapEvent
		wg  sync.WaitGroup
	)
	wg.Go(func() {
		evs = netfault.Flap(ctx, ch.p, rng, netfault.FlapConfig{MinWait: 200 * time.Millisecond, MaxWait: 1500 * time.Millisecond})
	})
	ch.logf("flapping the replicas' links for %v", d)
	return func() {
		wg.Wait()
		cancel()
		cuts := 0
		for _, e := range evs {
			if e.Cut {
				cuts++
			}
		}
		ch.logf("flapping over: %d changes (%d cuts); first: %v", len(evs), cuts, evs[:min(len(evs), 8)])
		require.Positive(ch.t, cuts, "harness: flapping cut nothing")
	}
}

// TestChaos_Flapping cuts and restores random links, one direction or both,
// every 200 ms to 1.5 s for 15 s.
func TestChaos_Flapping(t *testing.T) {
	t.Parallel()
	ch := startChaos(t, chaosOptions{raw: 4})
	ch.waitAckedMore(300)
	ch.flap(15 * time.Second)()
	require.Positive(t, ch.heldBytes(), "harness: flapping held no replica traffic")
	ch.finish()
}

// TestChaos_FlappingKillsPauses flaps links for 15 s as TestChaos_Flapping
// does and meanwhile, one at a time, SIGKILLs a random replica and restarts
// it 1-2.5 s later, or SIGSTOPs one for 1.5-3 s (past the failure timeout)
// and continues it. Half the seeds put the proxy in reset mode, so that a
// cut link breaks its connections instead of holding them.
func TestChaos_FlappingKillsPauses(t *testing.T) {
	t.Parallel()
	ch := startChaos(t, chaosOptions{raw: 4})
	ch.waitAckedMore(300)
	const d = 15 * time.Second
	if ch.rng.IntN(2) == 0 {
		// Cut links close their connections, as TCP timeouts would,
		// rather than hold them.
		ch.p.SetReset(true)
		ch.logf("proxy in reset mode")
	}
	end := time.Now().Add(d)
	wait := ch.flap(d)
	for time.Now().Before(end) && t.Context().Err() == nil {
		ch.sleep(ch.between(300*time.Millisecond, 1200*time.Millisecond))
		id := ch.rng.IntN(3)
		if ch.rng.IntN(2) == 0 {
			ch.kill(id)
			ch.sleep(ch.between(time.Second, 2500*time.Millisecond))
			ch.restart(id)
		} else {
			ch.pauseReplica(id)
			ch.sleep(ch.between(1500*time.Millisecond, 3*time.Second))
			ch.resume(id)
		}
	}
	wait()
	ch.finish()
}

// wipeCatchupRate is the rate, in bytes per second, of the other replicas'
// traffic to the wiped one in TestChaos_WipeThenCrash: a catch-up batch
// (about 256 KiB) takes a couple of seconds, so the wiped replica is seen
// holding part of the log, and the others crash long before it holds all.
const wipeCatchupRate = 128 << 10

// wipeLoad is how many sends are acknowledged before the full stop in
// TestChaos_WipeThenCrash (a few seconds of load).
const wipeLoad = 4000

// TestChaos_WipeThenCrash replaces a disk at the worst moment: load for a few
// seconds (wipeLoad sends), stop all three replicas, wipe replica 0's data directory (its
// disk was replaced; the cluster secret is kept), restart all three, and
// while replica 0 is still catching up (the proxy slows what the others send
// it), SIGKILL the other two. Replica 0 holds only part of what was
// acknowledged, so it must never become primary (polled on its own address
// for 5 s, five failure timeouts); then the other two restart and nothing
// may be lost.
func TestChaos_WipeThenCrash(t *testing.T) {
	t.Parallel()
	const wiped = 0
	ch := startChaos(t, chaosOptions{raw: 4})
	// A log several catch-up batches long, so that the wiped replica is
	// seen holding a part of it.
	ch.waitAckedMore(wipeLoad)
	for id := range 3 {
		ch.kill(id)
	}
	require.NoError(t, ch.c.Wipe(wiped))
	ch.logf("wiped replica %d's data directory; sends %s", wiped, ch.outcomeLine())
	for _, o := range others(wiped) {
		ch.p.SetRate(o, wiped, wipeCatchupRate)
	}
	for id := range 3 {
		ch.restart(id)
	}

	// Until the wiped replica holds part of the log, not all of it. It
	// must not lead meanwhile either.
	direct := ch.c.DirectAddrs()
	var (
		ownEnd, othersEnd uint64
		led               []string
	)
	watch := func() {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		ok, err := cluster.Hello(ctx, direct[wiped])
		cancel()
		if err == nil && ok.Role == wire.RolePrimary {
			st, _ := selfStatus(t.Context(), direct[wiped])
			led = append(led, fmt.Sprintf("%.3fs: primary in epoch %d with log end %d", time.Since(ch.start).Seconds(), ok.Epoch, st.LogEnd))
			if len(led) == 1 {
				ch.logf("replica %d became primary: epoch %d, log end %d, while the others held %d", wiped, ok.Epoch, st.LogEnd, othersEnd)
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		watch()
		ownEnd, othersEnd = ch.logEnd(direct[wiped]), 0
		for _, o := range others(wiped) {
			othersEnd = max(othersEnd, ch.logEnd(direct[o]))
		}
		if ownEnd >= 20 && ownEnd < othersEnd {
			break
		}
		require.True(t, time.Now().Before(deadline), "harness: the wiped replica did not start catching up (log end %d, others %d)", ownEnd, othersEnd)
		time.Sleep(pollInterval)
	}
	ch.logf("replica %d is catching up: %d of at least %d records", wiped, ownEnd, othersEnd)
	for _, o := range others(wiped) {
		ch.kill(o)
	}
	ownEnd = ch.logEnd(direct[wiped])
	ch.logf("the others crashed while replica %d was catching up: it holds %d records, they held at least %d", wiped, ownEnd, othersEnd)
	require.Less(t, ownEnd, othersEnd, "harness: the wiped replica caught up before the crash; the race was not exercised")

	// Alone, it must not lead on what it holds.
	watchEnd := time.Now().Add(5 * time.Second)
	for time.Now().Before(watchEnd) {
		watch()
		time.Sleep(pollInterval)
	}
	assert.Zero(t, len(led), "the wiped replica became primary without the data (others held %d records), seen %d times; first: %v", othersEnd, len(led), led[:min(len(led), 5)])
	for _, o := range others(wiped) {
		ch.restart(o)
	}
	ch.finish()
}

// logEnd is the log end a replica reports for itself, 0 if it does not
// answer.
func (ch *chaos) logEnd(addr string) uint64 {
	ctx, cancel := context.WithTimeout(ch.t.Context(), time.Second)
	defer cancel()
	st, err := selfStatus(ctx, addr)
	if err != nil {
		return 0
	}
	return st.LogEnd
}

// TestChaos_PauseQueuedSends SIGSTOPs the primary for 2.5-3.5 s (past the
// failure timeout) while clients keep sending to it: the library clients'
// requests and the raw clients' (each waiting up to rawAnswerTimeout for its
// answer) queue in its socket. Another replica takes over; SIGCONT; the old
// primary answers what was queued. A request it answers with a definite
// error (not_primary, unavailable, ...) must never be applied: a raw client
// does not retry it, and would send a duplicate if it did.
func TestChaos_PauseQueuedSends(t *testing.T) {
	t.Parallel()
	ch := startChaos(t, chaosOptions{raw: 12})
	ch.waitAckedMore(300)
	queued := 0
	ch.phase(faultPhase, func() {
		p := ch.primary()
		require.GreaterOrEqual(t, p, 0, "no primary before a pause")
		d := ch.between(2500*time.Millisecond, 3500*time.Millisecond)
		ch.pauseReplica(p)
		ch.sleep(d)
		n := ch.rawInFlightOn(p)
		queued += n
		taken := -1
		for id, ok := range ch.roles() {
			if ok.Role == wire.RolePrimary {
				taken = id
			}
		}
		ch.resume(p)
		ch.logf("paused %v: %d raw requests queued on replica %d; replica %d had taken over", d, n, p, taken)
		ch.sleep(ch.between(1500*time.Millisecond, 2500*time.Millisecond))
		ch.logf("sends %s", ch.outcomeLine())
	})
	require.Positive(t, queued, "harness: no raw request was queued on a paused primary")
	ch.finish()
}
