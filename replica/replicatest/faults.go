package replicatest

import (
	"errors"
	"math/rand/v2"
	"slices"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

// Crash drops a node and its un-persisted Ready; its disk keeps what was
// persisted. Its state is lost (it is rebuilt from the log).
func (c *Cluster) Crash(id replica.NodeID) {
	s := c.node(id)
	if s.Down() {
		return
	}
	c.Tracef("CRASH n%d", id)
	c.Stats.Crashes++
	s.Node, s.readyDue, s.pausedUntil = nil, false, 0
	s.queued = nil
	s.pendingSnap, s.failNext = nil, nil
	c.dropTransfers(id, replica.None)
	s.SM = c.app.NewState()
	s.lastSeq = nil
	c.Net.DropTo(id)
	for _, cl := range c.clients {
		cl.accepted = slices.DeleteFunc(cl.accepted, func(n replica.NodeID) bool { return n == id })
	}
}

// Wipe crashes a node and replaces its disk with an empty one: a disk
// replaced, or a data directory deleted by an operator. It restarts (later,
// or at once with Restart) with an empty log and a new identity, and must
// not lead, vote as fresher or count as holding committed records until the
// primary adds it to the ISR again.
func (c *Cluster) Wipe(id replica.NodeID) {
	s := c.node(id)
	c.Crash(id)
	c.Tracef("WIPE n%d (its log held %d records)", id, s.Disk.Last())
	c.Stats.Wipes++
	s.Disk = eventlog.NewMemoryLog()
	s.epochs, s.hashes, s.shadow = nil, nil, nil
	s.snaps, s.installing, s.lastTaken, s.compacted, s.stable, s.safeDurable = nil, nil, 0, 0, 0, 0
	s.wiped = true
	s.corrupt, s.failedAt = nil, 0
}

// Corrupt makes the record at offset off of node id's log fail its
// checksum from now on.
func (c *Cluster) Corrupt(id replica.NodeID, off eventlog.Offset) {
	s := c.node(id)
	if s.corrupt == nil {
		s.corrupt = map[eventlog.Offset]bool{}
	}
	s.corrupt[off] = true
	c.Stats.Corruptions++
	c.Tracef("CORRUPT n%d offset %d", id, off)
}

// repair replaces a failed node's disk, as an operator restarting it with
// --repair does: it comes back as a new member and fetches everything.
func (c *Cluster) repair(s *SimNode) error {
	c.Tracef("REPAIR n%d (failed at t=%d)", s.ID, s.failedAt)
	c.Wipe(s.ID)
	return c.Restart(s.ID)
}

// canWipe reports whether node id's disk may be wiped without making the
// cluster stuck for good: no other disk is wiped and not yet back in an ISR,
// and a running primary has another member in its ISR that holds every
// committed record. (Safety holds either way; but when every member of the
// last ISR lost its disk, only the operator's --force-lead can go on, and
// the liveness phase could not converge.)
func (c *Cluster) canWipe(id replica.NodeID) bool {
	for _, o := range c.Nodes {
		if o.wiped {
			return false
		}
	}
	p, ok := c.Primary()
	if !ok || !c.othersHoldAcked(id) {
		return false
	}
	for _, m := range c.Status(p).ISR {
		if o := c.node(m); m != id && !o.Down() && c.holdsCommitted(o) {
			return true
		}
	}
	return false
}

// othersHoldAcked reports whether every acknowledged request is on some disk
// other than node id's. After a fork, an acknowledged write may live only on
// the losing side's disks until it is re-submitted: destroying the last copy
// loses it, whatever the protocol does.
func (c *Cluster) othersHoldAcked(id replica.NodeID) bool {
	held := map[ClientSeq]bool{}
	for _, o := range c.Nodes {
		if o.ID == id {
			continue
		}
		// The whole history: compacted records are in its snapshots.
		rolled, err := o.Disk.RolledBack(1 << 20)
		if err != nil {
			return false
		}
		for _, r := range append(slices.Clip(o.shadow), rolled...) {
			held[ClientSeq{r.ClientID, r.Seq}] = true
		}
	}
	for k := range c.Acked {
		if !held[k] {
			return false
		}
	}
	return true
}

// holdsCommitted reports whether s's disk holds every record known
// committed.
//
// It compares the disk's chained hash (its mirror, s.hashes) at the last
// committed offset with the same chain over the committed digests: the
// lease check calls it at every step, and reading the whole log each time
// made long runs quadratic.
func (c *Cluster) holdsCommitted(s *SimNode) bool {
	n := len(c.committed)
	if n == 0 {
		return true
	}
	return len(s.hashes) >= n && s.hashes[n-1] == c.committedChainAt(n)
}

// committedChainAt returns the chained hash of the first n committed
// digests, chained as persist chains a disk's records (SimNode.hashes).
func (c *Cluster) committedChainAt(n int) uint64 {
	for k := len(c.committedChain); k < n; k++ {
		var prev uint64
		if k > 0 {
			prev = c.committedChain[k-1]
		}
		c.committedChain = append(c.committedChain, prev*1099511628211^c.committed[k])
	}
	return c.committedChain[n-1]
}

// Restart recreates a crashed node from its disk.
func (c *Cluster) Restart(id replica.NodeID) error {
	s := c.node(id)
	if !s.Down() {
		return nil
	}
	if s.installing != nil {
		// An install a crash interrupted: finished before anything else.
		if err := c.install(s, s.installing, -1); err != nil {
			return err
		}
	}
	want, err := scanLatestISR(s.Disk)
	if err != nil {
		return c.fail("restart n%d: %v", id, err)
	}
	if _, _, err := replica.EnsureIdentity(s.Disk, id, randReader{c.rng}); err != nil {
		return c.fail("restart n%d: %v", id, err)
	}
	if c.snapshotsOn() {
		sm, ok, err := c.rebuildState(s, s.Disk.Last(), "restart")
		if err != nil {
			return err
		}
		if !ok {
			return c.fail("restart n%d: its log starts at %d and no snapshot covers what it compacted", id, s.Disk.First())
		}
		s.SM = sm
		s.compacted = s.Disk.First() - 1
		s.lastTaken = 0
		if l := s.latestSnapshot(); l != nil {
			s.lastTaken = l.Offset
		}
	}
	n, err := replica.NewNode(c.config(id), simDisk{s.Disk, s})
	if errors.Is(err, eventlog.ErrCorrupt) {
		// Start-up reads its ISR record and the log's ends: a corrupt one
		// there refuses the start (chatd exits with the reason); the
		// operator repairs it.
		c.Tracef("RESTART n%d refused: %v", id, err)
		s.failedAt = c.Now
		return nil
	}
	if err != nil {
		return c.fail("restart n%d: %v", id, err)
	}
	// The node finds its ISR through the ISR index, not by scanning: it must
	// be what a scan finds (unless the node led at once, alone in it, and
	// appended a new ISR record naming itself again).
	if got := n.Status().ISR; want != nil && !slices.Equal(got, want) {
		return c.fail("restart n%d: isr %v, but the log's latest isr record names %v", id, got, want)
	}
	s.Node, s.lastCommit, s.primaryOf = n, 0, 0
	s.now, s.tickAt = 1, map[int64]int64{1: c.Now}
	c.Tracef("RESTART n%d last=%d identity=%s", id, s.Disk.Last(), n.Status().Identity)
	c.Stats.Restarts++
	return c.processReady(s)
}

// randReader reads bytes from the cluster's seeded source, so that the
// identities EnsureIdentity creates replay with the seed.
type randReader struct{ rng *rand.Rand }

func (r randReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.rng.Uint32())
	}
	return len(p), nil
}

// scanLatestISR returns the members named by the disk's latest ISR record,
// nil if it has none.
func scanLatestISR(d *eventlog.MemoryLog) ([]replica.NodeID, error) {
	recs, err := d.Read(d.First(), 1<<62)
	if err != nil {
		return nil, err
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Type != replica.TypeISR {
			continue
		}
		ch, err := replica.DecodeISRChange(recs[i].Data)
		if err != nil {
			return nil, err
		}
		ids := []replica.NodeID{}
		for _, m := range ch.Members {
			ids = append(ids, m.ID)
		}
		return ids, nil
	}
	return nil, nil
}

// Pause stops a node for ticks ticks (no ticks, no messages, no Ready).
func (c *Cluster) Pause(id replica.NodeID, ticks int) {
	s := c.node(id)
	if s.Down() || s.pausedUntil > c.Now {
		return
	}
	c.Tracef("PAUSE n%d for %d", id, ticks)
	c.Stats.Pauses++
	s.pausedAt, s.pausedUntil = c.Now, c.Now+int64(ticks)
}

// resume ends a node's pause. The requests queued while it was stopped are
// taken either before it notices the pause (the loop picked a proposal
// before its late tick) or after: the core must answer them truthfully
// either way.
func (c *Cluster) resume(s *SimNode) error {
	gap := int(c.Now - s.pausedAt)
	s.pausedUntil = 0
	queued := s.queued
	s.queued = nil
	first := c.rng.IntN(2) == 0
	c.Tracef("RESUME n%d after %d (%d queued, taken %s the pause is noticed)", s.ID, gap, len(queued),
		map[bool]string{true: "before", false: "after"}[first])
	if !first {
		s.Node.Paused(gap)
	}
	for _, k := range queued {
		if s.Down() {
			return nil // crashed while persisting what it took
		}
		if err := c.takeQueued(s, k); err != nil {
			return err
		}
	}
	if s.Down() {
		return nil
	}
	if first {
		s.Node.Paused(gap)
	}
	return c.processReady(s)
}

func (c *Cluster) injectFaults() error {
	o := c.opts
	for _, s := range c.Nodes {
		if s.failedAt != 0 && c.Now-s.failedAt >= int64(max(o.RepairTicks, 1)) && c.canWipe(s.ID) {
			// As an operator would, once the cluster is otherwise healthy:
			// repairing while this disk holds the last copy of anything
			// (a record only it has, an ISR record others learned of) could
			// leave the cluster needing --force-lead.
			if err := c.repair(s); err != nil {
				return err
			}
			continue
		}
		if !s.Down() && s.failedAt == 0 && s.Disk.Last() > 0 && c.rng.Float64() < o.CorruptProb && c.canWipe(s.ID) {
			c.Corrupt(s.ID, eventlog.Offset(1+c.rng.Uint64N(uint64(s.Disk.Last()))))
		}
		switch {
		case s.Down():
			if c.rng.Float64() < o.WipeProb && !s.wiped && c.canWipe(s.ID) {
				c.Wipe(s.ID)
			}
			if c.rng.Float64() < o.RestartProb {
				if err := c.Restart(s.ID); err != nil {
					return err
				}
			}
		case s.paused(c.Now):
		case c.downCount() >= o.MaxDown:
		case c.rng.Float64() < o.CrashProb:
			c.Crash(s.ID)
		case c.rng.Float64() < o.PauseProb:
			f := c.opts.Config.FailoverTicks
			ticks := 1 + c.rng.IntN(max(1, f/2-1)) // short: below PauseTicks
			if c.rng.IntN(2) == 0 {
				ticks = f/2 + c.rng.IntN(3*f) // long: peers may fail it over
			}
			c.Pause(s.ID, ticks)
		}
	}
	if c.rng.Float64() < o.Net.BreakProb && len(c.Nodes) > 1 {
		a := c.rng.IntN(len(c.Nodes))
		b := (a + 1 + c.rng.IntN(len(c.Nodes)-1)) % len(c.Nodes)
		c.Tracef("BREAK n%d-n%d", a, b)
		c.Net.Break(replica.NodeID(a), replica.NodeID(b))
		c.dropTransfers(replica.NodeID(a), replica.NodeID(b))
	}
	if c.Net.Partitioned() {
		if c.rng.Float64() < o.Net.HealProb {
			c.Tracef("HEAL")
			c.Net.Heal()
		}
	} else if c.rng.Float64() < o.Net.PartitionProb {
		side := map[replica.NodeID]int{}
		for _, s := range c.Nodes {
			side[s.ID] = c.rng.IntN(2)
		}
		c.Tracef("PARTITION %v", side)
		c.Stats.Partitions++
		c.Net.Partition(side)
	}
	return nil
}

// HealAll turns faults off and brings every node back: the start of the
// liveness phase.
func (c *Cluster) HealAll() error {
	c.Faults = false
	c.Traffic = false
	c.Net.Heal()
	c.Net.Unblock()
	for _, s := range c.Nodes {
		if s.failedAt != 0 && !s.Down() && errors.Is(s.Node.Status().Err, replica.ErrForkTooDeep) {
			// Only a new disk brings it back (--repair).
			c.Tracef("n%d: repaired after a fork below its compacted log", s.ID)
			c.Wipe(s.ID)
		}
		if s.failedAt != 0 || len(s.corrupt) > 0 {
			// Liveness needs every disk whole: the operator restores the
			// damaged file (the safety phase covered replacing it).
			c.Tracef("n%d: damaged records restored", s.ID)
			s.corrupt, s.failedAt = nil, 0
			if !s.Down() {
				c.Crash(s.ID)
			}
		}
		if s.Down() {
			if err := c.Restart(s.ID); err != nil {
				return err
			}
		} else if s.paused(c.Now) {
			s.pausedUntil = c.Now
		}
	}
	c.Tracef("LIVENESS: faults off")
	return nil
}
