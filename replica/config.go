package replica

import (
	"fmt"
	"log/slog"
	"slices"
)

// Config configures a Node. The zero value of each tuning field selects its
// default; ID and Peers are required.
type Config struct {
	// ID is this replica. It must appear in Peers.
	ID NodeID
	// Peers lists every replica of the cluster, this one included. Every
	// replica must be given the same set.
	Peers []NodeID
	// Mode is the commit rule. Only ModeAll is implemented.
	Mode Mode

	// HeartbeatTicks is how often every node tells every other node that it
	// is alive (and the primary its commit). Default 2.
	HeartbeatTicks int
	// FailoverTicks is the silence after which a peer is treated as crashed:
	// a primary drops it from the ISR, a backup runs for election. It must
	// exceed HeartbeatTicks plus the longest network delay, in ticks, by a
	// safe margin (see PauseTicks). Default 10 * HeartbeatTicks.
	FailoverTicks int
	// PauseTicks is the gap, reported through Node.Paused, after which a node
	// must consider that its peers may have declared it crashed, and so
	// behaves as if it had restarted. Safety needs
	// PauseTicks + HeartbeatTicks + max network delay < FailoverTicks.
	// Default FailoverTicks / 2.
	PauseTicks int
	// LeaseTicks is how long a primary's read lease lasts after the tick
	// from which every other ISR member is known to have restarted its
	// failover timer (Node.leaseStamp). It must stay below FailoverTicks - 1
	// (a backup counting FailoverTicks ticks spends at least FailoverTicks-1
	// tick intervals of wall time: tickers coalesce but never fire early),
	// with a margin for clocks that run at different rates on different
	// machines. Default 3/4 of FailoverTicks.
	LeaseTicks int
	// LagTicks is how long an ISR member may stay behind the primary's log
	// end (while alive) before the primary starts removing it from the ISR.
	// Default 4 * FailoverTicks.
	LagTicks int
	// MaxBatchBytes bounds the records of one Append message. Default 256
	// KiB: a batch is read, encoded, decoded and persisted inside one loop
	// iteration of each side, so its size bounds how long a catch-up keeps
	// a loop from ticking (see PauseTicks), while MaxInflight batches in
	// flight still cover the round trip.
	MaxBatchBytes int
	// MaxInflight bounds the Append messages outstanding (sent, not
	// acknowledged) per backup. Default 8.
	MaxInflight int
	// MaxUncommitted bounds the records proposed but not yet committed;
	// Propose returns ErrBackpressure beyond it. Default 8192.
	MaxUncommitted int
	// MaxResubmit bounds the rolled-back records re-submitted per message.
	// Default 256.
	MaxResubmit int

	// Seed seeds the node's own random source (election jitter). Nodes of a
	// cluster should differ in (Seed, ID); the node mixes in its ID.
	Seed uint64
	// Logger receives protocol events (elections, ISR changes, truncation).
	// nil discards.
	Logger *slog.Logger
}

// withDefaults returns c with every zero tuning field set to its default.
func (c Config) withDefaults() Config {
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 2
	}
	if c.FailoverTicks == 0 {
		c.FailoverTicks = 10 * c.HeartbeatTicks
	}
	if c.PauseTicks == 0 {
		c.PauseTicks = c.FailoverTicks / 2
	}
	if c.LagTicks == 0 {
		c.LagTicks = 4 * c.FailoverTicks
	}
	if c.LeaseTicks == 0 {
		c.LeaseTicks = c.FailoverTicks * 3 / 4
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = 256 << 10
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = 8
	}
	if c.MaxUncommitted == 0 {
		c.MaxUncommitted = 8192
	}
	if c.MaxResubmit == 0 {
		c.MaxResubmit = 256
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate rejects configurations the protocol cannot run safely with.
func (c Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Mode == ModeMajority:
		return bad("mode %s is not implemented yet; use mode all", c.Mode)
	case c.Mode != ModeAll:
		return bad("unknown mode %d", c.Mode)
	case c.ID == None:
		return bad("id %d is reserved", c.ID)
	case len(c.Peers) == 0:
		return bad("no peers (list every replica, this one included)")
	case !slices.Contains(c.Peers, c.ID):
		return bad("peers %v do not include this replica %s", c.Peers, c.ID)
	case c.HeartbeatTicks < 1:
		return bad("HeartbeatTicks %d < 1", c.HeartbeatTicks)
	case c.FailoverTicks <= 2*c.HeartbeatTicks:
		return bad("FailoverTicks %d must exceed twice HeartbeatTicks %d", c.FailoverTicks, c.HeartbeatTicks)
	case c.PauseTicks < 1 || c.PauseTicks+c.HeartbeatTicks >= c.FailoverTicks:
		return bad("PauseTicks %d must be >= 1 and PauseTicks + HeartbeatTicks < FailoverTicks %d", c.PauseTicks, c.FailoverTicks)
	case c.LagTicks < c.FailoverTicks:
		return bad("LagTicks %d < FailoverTicks %d", c.LagTicks, c.FailoverTicks)
	case c.LeaseTicks < 1 || c.LeaseTicks >= c.FailoverTicks-1:
		return bad("LeaseTicks %d must be >= 1 and below FailoverTicks - 1 = %d", c.LeaseTicks, c.FailoverTicks-1)
	case c.MaxBatchBytes < 1 || c.MaxInflight < 1 || c.MaxUncommitted < 1 || c.MaxResubmit < 1:
		return bad("MaxBatchBytes, MaxInflight, MaxUncommitted and MaxResubmit must be positive")
	}
	seen := map[NodeID]bool{}
	for _, p := range c.Peers {
		if p == None {
			return bad("peer id %d is reserved", p)
		}
		if seen[p] {
			return bad("peer %s listed twice", p)
		}
		seen[p] = true
	}
	return nil
}
