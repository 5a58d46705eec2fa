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
	"testing"

	"github.com/stretchr/testify/assert"

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
	// share divides the number of seeds (0 or 1: all of them).
	share int
	opts  func(seed uint64) replicatest.Options
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
				ReadyDelayProb: 0.2, Clients: 3, ProposeProb: 0.3, RetryTicks: 60,
			}
		},
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
			if *flagSeed != 0 {
				runSim(t, m, *flagSeed, steps, true)
				return
			}
			seeds := seeds / max(1, m.share)
			// Seeds run in a few parallel groups; each run is independent.
			const groups = 4
			stats := make([]replicatest.Stats, groups)
			t.Run("seeds", func(t *testing.T) {
				for g := range groups {
					t.Run(fmt.Sprintf("group%d", g), func(t *testing.T) {
						t.Parallel()
						for i := g; i < seeds; i += groups {
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
