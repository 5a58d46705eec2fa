package replicatest

import (
	"errors"
	"fmt"
	"slices"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

// check runs the invariants that can be checked after every step.
func (c *Cluster) check(s *SimNode) error {
	if c.err != nil {
		return c.err
	}
	if s.Node == nil {
		return nil
	}
	st := s.Node.Status()
	if st.Err != nil {
		corrupt := len(s.corrupt) > 0 && errors.Is(st.Err, eventlog.ErrCorrupt)
		// Only a fork reserve (ForkRetain) lets a fork go below the
		// compacted log; without one it is a bug.
		tooDeep := c.opts.ForkRetain > 0 && errors.Is(st.Err, replica.ErrForkTooDeep)
		if !corrupt && !tooDeep {
			return c.fail("n%d stopped: %v", s.ID, st.Err)
		}
		// It read a record that fails its checksum: it must never serve or
		// lead again in this life (it is repaired by an operator).
		if st.Role == replica.RolePrimary {
			return c.fail("n%d is primary after its log failed a checksum: %v", s.ID, st.Err)
		}
		if s.failedAt == 0 {
			s.failedAt = c.Now
			c.Stats.Failed++
			c.Tracef("n%d failed: %v", s.ID, st.Err)
		}
		return nil
	}
	if s.wiped && (st.Role == replica.RolePrimary || st.Eligible) {
		// Invariant 10: a replaced disk holds nothing committed until it
		// has caught up and the primary has made it a member again; being
		// eligible proves that (its own log names its new identity). Under
		// partitions "committed" is one side's view; the final checks catch
		// a loss there.
		if !c.opts.Partitions && !c.holdsCommitted(s) {
			return c.fail("n%d (disk replaced) is %s, eligible %v, without every committed record (holds %d of %d)",
				s.ID, st.Role, st.Eligible, len(s.hashes), len(c.committed))
		}
		s.wiped = false
		c.Tracef("n%d (disk replaced) is a member again", s.ID)
	}
	if st.Role == replica.RolePrimary {
		// Invariant 6: at most one primary per epoch.
		if p, ok := c.primaries[st.Epoch]; ok && p != s.ID {
			return c.fail("two primaries in epoch %d: n%d and n%d", st.Epoch, p, s.ID)
		} else if !ok {
			c.Stats.Primaries++
		}
		c.primaries[st.Epoch] = s.ID
		if s.primaryOf != st.Epoch && !c.opts.Partitions {
			// Invariant 7: a new primary holds every committed record.
			s.primaryOf = st.Epoch
			if err := c.checkHolds(s); err != nil {
				return err
			}
		}
	}
	// Invariant 4: log matching, against every other disk.
	for _, o := range c.Nodes {
		if o != s {
			if err := c.checkMatching(s, o); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Cluster) checkHolds(s *SimNode) error {
	n := len(c.committed)
	if len(s.hashes) < n {
		return c.fail("new primary n%d (epoch %d) holds %d records, %d are committed", s.ID, s.primaryOf, len(s.hashes), n)
	}
	// Its history, compacted records included (they are in its snapshot).
	for i, r := range s.shadow[:n] {
		if recordDigest(r) != c.committed[i] {
			return c.fail("new primary n%d lacks committed record %d", s.ID, i+1)
		}
	}
	return nil
}

// checkLeases checks the read lease, measured on the cluster's clock from
// the tick it began at (a paused node's ticks stop, the clock does not). A
// primary that holds it has no member of its ISR leading in a later epoch,
// in every network model; and, in the TCP-like model, it holds every record
// committed anywhere, so a read it serves misses no acknowledged write.
// (Under partitions, a side that dropped the other from its ISR holds a
// lease of its own: all mode forks there, as documented.)
func (c *Cluster) checkLeases() error {
	if c.err != nil {
		return c.err
	}
	for _, s := range c.Nodes {
		if !c.Up(s.ID) {
			continue
		}
		st := s.Node.Status()
		if st.Role != replica.RolePrimary || st.LeaseStamp == 0 {
			continue
		}
		at, ok := s.tickAt[st.LeaseStamp]
		if !ok || at+int64(st.LeaseTicks) <= c.Now {
			continue
		}
		c.Stats.LeaseChecks++
		for _, id := range st.ISR {
			if o := c.node(id); id != s.ID && !o.Down() {
				if ost := o.Node.Status(); ost.Role == replica.RolePrimary && ost.Epoch > st.Epoch {
					return c.fail("n%d holds its read lease (from tick %d, at t=%d) in epoch %d, but n%d of its ISR %v leads epoch %d",
						s.ID, st.LeaseStamp, at, st.Epoch, id, st.ISR, ost.Epoch)
				}
			}
		}
		if !c.opts.Partitions && !c.holdsCommitted(s) {
			return c.fail("n%d holds its read lease (from tick %d, at t=%d) but lacks committed records (holds %d of %d)",
				s.ID, st.LeaseStamp, at, len(s.hashes), len(c.committed))
		}
	}
	return nil
}

func (c *Cluster) checkMatching(a, b *SimNode) error {
	top := min(len(a.epochs), len(b.epochs))
	for i := top - 1; i >= 0; i-- {
		if a.epochs[i] == b.epochs[i] {
			if a.hashes[i] != b.hashes[i] {
				return c.fail("log matching: n%d and n%d agree on (epoch %d, offset %d) but not on the records up to it",
					a.ID, b.ID, a.epochs[i], i+1)
			}
			return nil
		}
	}
	return nil
}

func readAll(l *eventlog.MemoryLog, upto eventlog.Offset) ([]eventlog.Record, error) {
	var out []eventlog.Record
	for from := max(1, l.First()); from <= upto; {
		recs, err := l.Read(from, 1<<20)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if r.Offset <= upto {
				out = append(out, r)
			}
		}
		from = recs[len(recs)-1].Offset + 1
	}
	return out, nil
}

// Converged reports whether every node runs, holds the same log, has
// applied all of it to the same state, every node is in the primary's ISR,
// rollback areas are empty and no client request is pending.
func (c *Cluster) Converged() (bool, string) {
	p, ok := c.Primary()
	if !ok {
		return false, "no primary"
	}
	pst := c.Status(p)
	ref := c.Nodes[p]
	for _, s := range c.Nodes {
		if !c.Up(s.ID) {
			return false, fmt.Sprintf("n%d not running", s.ID)
		}
		if len(s.hashes) != len(ref.hashes) || (len(s.hashes) > 0 && s.hashes[len(s.hashes)-1] != ref.hashes[len(ref.hashes)-1]) {
			return false, fmt.Sprintf("n%d log end %d differs from primary's %d", s.ID, len(s.hashes), len(ref.hashes))
		}
		if int(s.SM.Applied()) != len(s.hashes) || s.SM.Digest() != ref.SM.Digest() {
			return false, fmt.Sprintf("n%d applied %d of %d", s.ID, s.SM.Applied(), len(s.hashes))
		}
		if !slices.Contains(pst.ISR, s.ID) {
			return false, fmt.Sprintf("n%d not in the ISR %v", s.ID, pst.ISR)
		}
		if rb, _ := s.Disk.RolledBack(1); len(rb) > 0 {
			return false, fmt.Sprintf("n%d rollback area not empty", s.ID)
		}
	}
	for _, cl := range c.clients {
		if cl.pending {
			return false, fmt.Sprintf("client %s request %d pending", cl.id, cl.seq)
		}
	}
	return true, ""
}

// CheckFinal checks, after convergence, that every acknowledged request is
// applied on every replica with the result its client was told
// (invariants 1 and 2: present, once, under its acknowledged id), that no
// request refused definitively is, and that no replica holds a phantom.
func (c *Cluster) CheckFinal() error {
	for k, want := range c.Acked {
		reevaluated := false
		for _, s := range c.Nodes {
			got, ok := s.SM.Result(k.Client, k.Seq)
			if ok && got == want {
				continue
			}
			if re, can := s.SM.(Reevaluator); can && ok {
				if why, yes := re.Reevaluated(k.Client, k.Seq, want); yes {
					c.Tracef("REEVALUATED acknowledged %v (%q) on n%d: %q: %s", k, want, s.ID, got, why)
					reevaluated = true
					continue
				}
			}
			if !ok {
				return c.fail("acknowledged %v missing on n%d", k, s.ID)
			}
			return c.fail("acknowledged %v was answered %q, n%d holds %q", k, want, s.ID, got)
		}
		if reevaluated {
			c.Stats.Reevaluated++
		}
	}
	for k := range c.refused {
		for _, s := range c.Nodes {
			if _, ok := s.SM.Result(k.Client, k.Seq); ok {
				return c.fail("%v, refused definitively, is applied on n%d", k, s.ID)
			}
		}
	}
	for _, s := range c.Nodes {
		recs, err := readAll(s.Disk, s.Disk.Last())
		if err != nil {
			return c.fail("n%d: %v", s.ID, err)
		}
		for _, r := range recs {
			if r.ClientID == "" {
				continue
			}
			if !c.issued[ClientSeq{r.ClientID, r.Seq}] {
				return c.fail("n%d holds a phantom record %d", s.ID, r.Offset)
			}
		}
	}
	return nil
}

// Liveness heals everything and runs until the cluster converges, for at
// most maxTicks; then it checks the final invariants.
func (c *Cluster) Liveness(maxTicks int) error {
	if err := c.HealAll(); err != nil {
		return err
	}
	var why string
	fresh := true
	for i := range maxTicks {
		c.Stats.LivenessTicksMax = i + 1
		if err := c.Step(); err != nil {
			return err
		}
		var ok bool
		if ok, why = c.Converged(); ok {
			if !fresh {
				c.Tracef("converged")
				return c.CheckFinal()
			}
			// Invariant 11: writes resume. Every client sends one more
			// request; they must be acknowledged and replicated.
			c.Tracef("converged; new requests")
			fresh = false
			for _, cl := range c.clients {
				c.newRequest(cl)
				c.send(cl)
			}
		}
	}
	return c.fail("no convergence within %d ticks: %s", maxTicks, why)
}
