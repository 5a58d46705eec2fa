package replica_test

// The deterministic simulation (DESIGN.md section 3, "The deterministic
// core", and section 7): many seeded runs of a 3-replica cluster under
// faults, with the invariants checked after every step, then a liveness
// phase with faults off that must converge.
//
//	go test ./replica -run TestSim -seed=N        replay one seed
//	go test ./replica -run TestSim -seeds=5000    more seeds (make sim)

import (
	"flag"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replichat/replichat/replica"
	"github.com/replichat/replichat/replica/replicatest"
)

var (
	flagSeed  = flag.Uint64("seed", 0, "run only this simulation seed (0: the default set)")
	flagSteps = flag.Int("steps", 0, "ticks of faults per simulation run (0: default)")
	flagSeeds = flag.Int("seeds", 0, "number of seeds per network model (0: default)")
	flagLong  = flag.Bool("sim.long", false, "run many more seeds and steps")
)

const (
	defaultSeeds = 500
	defaultSteps = 500
	livenessMax  = 3000
)

// model is one of DESIGN.md's two network models for all mode.
type model struct {
	name string
	// share divides the number of seeds (0 or 1: all of them), raceShare
	// instead under the race detector; minSteps is the fewest ticks a run
	// has (snapshots and installs need a few hundred to happen at all).
	share, raceShare int
	minSteps         int
	opts             func(seed uint64) replicatest.Options
}

func simConfig() replica.Config {
	return replica.Config{HeartbeatTicks: 2, FailoverTicks: 20, MaxBatchBytes: 2048, MaxInflight: 4, LagTicks: 200}
}

var models = []model{
	{
		// (i) TCP-like links (in order, delays below the failure timeout,
		// connections that break) plus crashes, restarts and pauses: every
		// invariant must hold.
		name: "tcp",
		opts: func(seed uint64) replicatest.Options {
			return replicatest.Options{
				Seed: seed, Nodes: 3, Config: simConfig(),
				Net:       replicatest.NetworkOptions{DelayMinTicks: 1, DelayMeanTicks: 2, DelayMaxTicks: 6, FIFO: true, BreakProb: 0.01},
				CrashProb: 0.004, RestartProb: 0.02, CrashMidReadyProb: 0.002, PauseProb: 0.002, MaxDown: 2,
				WipeProb: 0.02, QueueProb: 0.5, AbandonProb: 0.3, CorruptProb: 0.0005, RepairTicks: 100,
				ReadyDelayProb: 0.2, Clients: 3, ProposeProb: 0.3, RetryTicks: 60,
			}
		},
	},
	{
		// (i) with five replicas, up to four of them down at once.
		name:  "tcp5",
		share: 5,
		opts: func(seed uint64) replicatest.Options {
			return replicatest.Options{
				Seed: seed, Nodes: 5, Config: simConfig(),
				Net:       replicatest.NetworkOptions{DelayMinTicks: 1, DelayMeanTicks: 2, DelayMaxTicks: 6, FIFO: true, BreakProb: 0.01},
				CrashProb: 0.004, RestartProb: 0.02, CrashMidReadyProb: 0.002, PauseProb: 0.002, MaxDown: 4,
				WipeProb: 0.02, QueueProb: 0.5, AbandonProb: 0.3,
				ReadyDelayProb: 0.2, Clients: 3, ProposeProb: 0.3, RetryTicks: 60,
			}
		},
	},
	{
		// (ii) Adds partitions, drops, duplicates, reordering and long
		// silences: all mode may fork, and only invariants 1-3 and 9 must
		// hold (nothing acknowledged lost after healing, no duplicates, no
		// phantoms, convergence).
		name: "partition",
		opts: func(seed uint64) replicatest.Options {
			return replicatest.Options{
				Seed: seed, Nodes: 3, Config: simConfig(), Partitions: true,
				Net: replicatest.NetworkOptions{DelayMinTicks: 1, DelayMeanTicks: 3, DropProb: 0.02, DupProb: 0.02,
					BreakProb: 0.01, PartitionProb: 0.01, HealProb: 0.02},
				CrashProb: 0.004, RestartProb: 0.02, CrashMidReadyProb: 0.002, PauseProb: 0.003, MaxDown: 2,
				WipeProb: 0.02, QueueProb: 0.5, AbandonProb: 0.3, CorruptProb: 0.0005, RepairTicks: 100,
				ReadyDelayProb: 0.2, Clients: 3, ProposeProb: 0.3, RetryTicks: 60,
			}
		},
	},
	{
		// (ii) with links cut and restored every few dozen ticks (a
		// flapping network) and busy clients, on top of the other faults.
		name:  "flap",
		share: 2,
		opts: func(seed uint64) replicatest.Options {
			return replicatest.Options{
				Seed: seed, Nodes: 3, Config: simConfig(), Partitions: true,
				Net: replicatest.NetworkOptions{DelayMinTicks: 1, DelayMeanTicks: 2, DropProb: 0.01, DupProb: 0.01,
					BreakProb: 0.02, PartitionProb: 0.05, HealProb: 0.08},
				CrashProb: 0.002, RestartProb: 0.03, CrashMidReadyProb: 0.001, PauseProb: 0.002, MaxDown: 2,
				WipeProb: 0.01, QueueProb: 0.5, AbandonProb: 0.3,
				ReadyDelayProb: 0.1, Clients: 6, ProposeProb: 0.8, RetryTicks: 40,
			}
		},
	},
	{
		// (i) with snapshots and compaction: every node snapshots every
		// 40 applied records and compacts 10 behind, past a replica that
		// is down (30 records of fork reserve, as forks are impossible
		// here); backups behind the compacted log install snapshots,
		// some damaged in flight, some installs crash part way.
		name:  "snap",
		share: 2, raceShare: 5, minSteps: defaultSteps,
		opts: func(seed uint64) replicatest.Options {
			return replicatest.Options{
				Seed: seed, Nodes: 3, Config: simConfig(),
				Net:       replicatest.NetworkOptions{DelayMinTicks: 1, DelayMeanTicks: 2, DelayMaxTicks: 6, FIFO: true, BreakProb: 0.01},
				CrashProb: 0.004, RestartProb: 0.01, CrashMidReadyProb: 0.002, PauseProb: 0.002, MaxDown: 2,
				WipeProb: 0.03, QueueProb: 0.5, AbandonProb: 0.3, CorruptProb: 0.0005, RepairTicks: 100,
				ReadyDelayProb: 0.2, Clients: 3, ProposeProb: 0.5, RetryTicks: 60,
				SnapshotEvery: 40, RetainEvents: 10, ForkRetain: 30, SnapshotDelayMax: 5, InstallTicksMax: 8,
				InstallCrashProb: 0.2, DamageSnapshotProb: 0.1,
			}
		},
	},
	{
		// (ii) with snapshots and compaction and no fork reserve: forks
		// must never reach below a compacted log, and a state that cannot
		// roll back is restored from the base snapshot.
		name:  "snap-partition",
		share: 2, raceShare: 5, minSteps: defaultSteps,
		opts: func(seed uint64) replicatest.Options {
			return replicatest.Options{
				Seed: seed, Nodes: 3, Config: simConfig(), Partitions: true,
				Net: replicatest.NetworkOptions{DelayMinTicks: 1, DelayMeanTicks: 3, DropProb: 0.02, DupProb: 0.02,
					BreakProb: 0.01, PartitionProb: 0.01, HealProb: 0.02},
				CrashProb: 0.004, RestartProb: 0.02, CrashMidReadyProb: 0.002, PauseProb: 0.003, MaxDown: 2,
				WipeProb: 0.02, QueueProb: 0.5, AbandonProb: 0.3, CorruptProb: 0.0005, RepairTicks: 100,
				ReadyDelayProb: 0.2, Clients: 3, ProposeProb: 0.5, RetryTicks: 60,
				SnapshotEvery: 40, RetainEvents: 10, SnapshotDelayMax: 5, InstallTicksMax: 8,
				InstallCrashProb: 0.2, DamageSnapshotProb: 0.1,
			}
		},
	},
}

// knownFailures are seeds beyond the default set (found by long runs) that
// fail the liveness phase, skipped with a note unless -seed names them. None
// is a safety failure: the run stops making progress because no replica can
// prove it holds every committed record, and waits for the operator.
var knownFailures = map[string]map[uint64]string{
	"partition": {
		2514: "liveness: a restarted backup re-added to the ISR by a primary whose disk is then replaced, before " +
			"the record reached it; it cannot prove it holds every committed record (it may not), so it waits for the operator",
		539: "by design: partitions leave replica 2 alone in the ISR, then its disk is replaced (its log held 83 records); " +
			"the others hold 83 too but cannot prove that is all it committed, so none may lead without --force-lead",
	},
	"flap": {1425: "by design: the same with replica 2 alone in the ISR at 477, its disk replaced"},
	"snap-partition": {
		691: "by design: partitions leave replica 0 alone in the ISR, then its disk is replaced; what it committed alone " +
			"is on no other replica, so none may lead without the operator (--force-lead)",
		759: "by design: the same with replica 2 alone in the ISR, its disk replaced",
	},
}

func TestSim(t *testing.T) {
	seeds, steps := defaultSeeds, defaultSteps
	if raceEnabled {
		steps = 200
	}
	if *flagLong {
		seeds, steps = 5000, 2000
	}
	if *flagSeeds > 0 {
		seeds = *flagSeeds
	}
	if *flagSteps > 0 {
		steps = *flagSteps
	}
	if testing.Short() {
		seeds = 50
	}
	for _, m := range models {
		t.Run(m.name, func(t *testing.T) {
			share, steps := m.share, steps
			if raceEnabled && m.raceShare > 0 {
				share = m.raceShare
			}
			if *flagSteps == 0 {
				steps = max(steps, m.minSteps)
			}
			if *flagSeed != 0 {
				runSim(t, m, *flagSeed, steps, true)
				return
			}
			seeds := seeds / max(1, share)
			// Seeds run in a few parallel groups; each run is independent.
			const groups = 4
			stats := make([]replicatest.Stats, groups)
			t.Run("seeds", func(t *testing.T) {
				for g := range groups {
					t.Run(fmt.Sprintf("group%d", g), func(t *testing.T) {
						t.Parallel()
						for i := g; i < seeds; i += groups {
							if why, known := knownFailures[m.name][uint64(i+1)]; known {
								t.Logf("seed %d skipped, a known failure: %s\nreproduce: go test ./replica -run 'TestSim/%s' -seed=%d",
									i+1, why, m.name, i+1)
								continue
							}
							c, ok := runSim(t, m, uint64(i+1), steps, false)
							if !ok {
								return
							}
							stats[g].Add(c.Stats)
						}
					})
				}
			})
			var total replicatest.Stats
			for _, s := range stats {
				total.Add(s)
			}
			t.Logf("%d seeds x %d ticks: %+v", seeds, steps, total)
			// A simulation whose faults never bite proves nothing.
			if seeds >= 50 && m.share <= 1 {
				assert.Greater(t, total.Crashes, seeds/10, "crashes")
				assert.Greater(t, total.Primaries, seeds, "elections")
				assert.Greater(t, total.Truncations, 0, "divergences")
				assert.Greater(t, total.EarlyCrashes, 0, "crashes after early sends")
				assert.Greater(t, total.Wipes, 0, "disks replaced")
				assert.Greater(t, total.Queued, 0, "requests queued on paused nodes")
				assert.Greater(t, total.Refused, 0, "requests abandoned after definite refusals")
				if steps >= defaultSteps && seeds >= defaultSeeds {
					assert.Greater(t, total.TornAppends, 0, "crashes that lost an append's tail")
				}
			}
			if seeds >= 50 {
				assert.Greater(t, total.LeaseChecks, seeds, "steps checked under a held lease")
			}
			if seeds >= 50 && m.opts(1).CorruptProb > 0 {
				assert.Greater(t, total.Corruptions, 0, "records that fail their checksum")
			}
			if seeds >= 50 && m.opts(1).SnapshotEvery > 0 {
				assert.Greater(t, total.Snapshots, seeds, "snapshots")
				assert.Greater(t, total.Compactions, seeds, "compactions")
				assert.Greater(t, total.Installs, 0, "snapshots installed")
				assert.Greater(t, total.InstallCrashes, 0, "crashes in the middle of an install")
				assert.Greater(t, total.SnapshotChecks, seeds, "restores checked against a replay from zero (invariant 9)")
				assert.Greater(t, total.SnapshotsRejected, 0, "damaged snapshots rejected")
			}
		})
	}
}

// runSim runs one seed; on failure it dumps the trace and the command that
// reproduces it.
func runSim(t *testing.T, m model, seed uint64, steps int, verbose bool) (*replicatest.Cluster, bool) {
	t.Helper()
	opts := m.opts(seed)
	if verbose {
		opts.TraceLines = 1 << 20
	}
	c, err := replicatest.NewCluster(opts)
	if err == nil {
		c.Verbose = verbose
		for range steps {
			if err = c.Step(); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = c.Liveness(livenessMax)
	}
	if err != nil {
		if c != nil {
			t.Logf("trace (last lines):\n%s", c.Trace())
		}
		t.Errorf("model %s seed %d: %v\nreproduce: go test ./replica -run 'TestSim/%s' -seed=%d", m.name, seed, err, m.name, seed)
		return c, false
	}
	if verbose {
		t.Logf("model %s seed %d: %d acknowledged requests, %d ticks, %+v", m.name, seed, c.AckedCount(), c.Now, c.Stats)
	}
	return c, true
}

// TestSim_Regressions replays runs that failed once (found by long runs or
// by CI's shorter race-mode runs, whose traces differ) and were fixed: they
// stay in the default suite whatever the default seed set becomes.
func TestSim_Regressions(t *testing.T) {
	for _, r := range []struct {
		model string
		seed  uint64
		steps int
		why   string
	}{
		{"partition", 439, 200, "a voter whose winner lost its disk was never eligible again (votedLog)"},
		{"tcp", 2379, 2000, "a member re-recorded under a new incarnation while its removal was under way led without records " +
			"committed after the removal (updateISR)"},
		{"snap-partition", 267, 2000, "a snapshot stream that ended after the backup had caught up by offset was installed: its log " +
			"and ISR rolled back to the snapshot's, which named it alone, and it led alone while the primary held its lease"},
	} {
		t.Run(fmt.Sprintf("%s/%d", r.model, r.seed), func(t *testing.T) {
			i := slices.IndexFunc(models, func(m model) bool { return m.name == r.model })
			require.GreaterOrEqual(t, i, 0, "model %s", r.model)
			if _, ok := runSim(t, models[i], r.seed, r.steps, false); !ok {
				t.Logf("regression: %s", r.why)
			}
		})
	}
}
