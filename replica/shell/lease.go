package shell

import (
	"context"
	"fmt"
	"time"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

// tickMemory is how many recent ticks' wall times the loop remembers: more
// than any lease lasts (LeaseTicks < FailoverTicks), so that the tick a
// lease began at is still known while the lease can be valid.
const tickMemory = 4096

// tickTimes remembers the wall time at which the loop gave the core each
// recent tick, in a ring indexed by the core's clock. Only the loop writes
// it; the lease it computes is published in Status.
type tickTimes struct {
	ticks []int64
	walls []time.Time
}

func (t *tickTimes) init(n int) {
	t.ticks = make([]int64, n)
	t.walls = make([]time.Time, n)
}

func (t *tickTimes) put(tick int64, wall time.Time) {
	i := tick % int64(len(t.ticks))
	t.ticks[i], t.walls[i] = tick, wall
}

// get returns the wall time of tick, false if it is too old (or unknown).
func (t *tickTimes) get(tick int64) (time.Time, bool) {
	i := tick % int64(len(t.ticks))
	if tick <= 0 || t.ticks[i] != tick {
		return time.Time{}, false
	}
	return t.walls[i], true
}

// leaseUntil returns until when the primary's read lease holds, in wall
// time, from the core's status: LeaseStamp is a tick at or after which every
// other ISR member restarted its failover timer; none of them can take over
// before it has counted FailoverTicks ticks of its own since, which take at
// least FailoverTicks-1 tick intervals (a ticker never fires early). The
// lease lasts LeaseTicks intervals from the wall time of that tick: measured
// on the wall clock, it runs out while this process is stopped, whatever its
// own tick count says. The zero time means no lease.
func (s *Shell) leaseUntil(st replica.Status) time.Time {
	if st.Role != replica.RolePrimary || st.LeaseStamp == 0 || st.Err != nil {
		return time.Time{}
	}
	at, ok := s.ticks.get(st.LeaseStamp)
	if !ok {
		return time.Time{}
	}
	return at.Add(time.Duration(st.LeaseTicks) * s.cfg.TickInterval)
}

// noLeaseReason says, for an operator and a client, why this primary holds
// no lease: the ISR members it has not heard from recently enough.
func (s *Shell) noLeaseReason(st replica.Status) string {
	if st.Role != replica.RolePrimary {
		return "not the primary"
	}
	var late []replica.NodeID
	silent := 0
	for _, p := range st.Peers {
		if p.InSync && p.HeardAgoTicks >= st.LeaseTicks/2 {
			late = append(late, p.ID)
			silent = max(silent, p.HeardAgoTicks)
		}
	}
	if len(late) == 0 {
		return fmt.Sprintf("primary %s has not yet heard from its in-sync replicas that they follow it", st.ID)
	}
	return fmt.Sprintf("primary %s has not heard from in-sync %s for %v: it may have been replaced",
		st.ID, replicaWord(late), time.Duration(silent)*s.cfg.TickInterval)
}

func replicaWord(ids []replica.NodeID) string {
	if len(ids) == 1 {
		return "replica " + ids[0].String()
	}
	return fmt.Sprintf("replicas %v", ids)
}

// ReadBarrier returns nil once a read of the state machine made right after
// it returns is linearizable with the writes acknowledged anywhere: this
// replica is the primary, holds its read lease (no other replica can have
// taken over, see leaseUntil), and its state has applied every record that
// was committed when ReadBarrier was called (a new primary applies the
// records committed before its election asynchronously). Otherwise it fails
// with an error wrapping replica.ErrNotPrimary (with a hint), ErrNoLease or
// ErrStopped, or ctx's error. It is cheap when the state is caught up.
//
// Under a partition in all mode, a primary that dropped the silent side from
// its ISR holds a lease again once it did: both sides of a fork serve their
// own history until the partition heals (docs/replication.md).
func (s *Shell) ReadBarrier(ctx context.Context) error {
	st := s.status.Load()
	if st.Role != RolePrimary {
		return &replica.NotPrimaryError{Primary: st.Primary, Waiting: st.Waiting}
	}
	if !time.Now().Before(st.LeaseUntil) {
		return noLease(st)
	}
	select {
	case <-s.stopped:
		return ErrStopped
	default:
	}
	if err := s.ap.waitApplied(ctx, eventlog.Offset(st.Commit)); err != nil {
		return err
	}
	// The wait may have outlasted the lease.
	if st2 := s.status.Load(); st2.Role != RolePrimary || !time.Now().Before(st2.LeaseUntil) {
		return noLease(st2)
	}
	return nil
}

func noLease(st *Status) error {
	reason := st.LeaseReason
	if reason == "" {
		reason = "its lease ran out: this primary may have been stopped or cut off, and replaced"
	}
	return fmt.Errorf("%w: %s", ErrNoLease, reason)
}
