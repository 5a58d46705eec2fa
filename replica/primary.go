package replica

import (
	"fmt"
	"slices"

	"github.com/replichat/replichat/eventlog"
)

// tickPrimary runs the primary's timers: retransmission, ISR maintenance.
func (n *Node) tickPrimary(heartbeat bool) {
	n.noteEnd()
	retry := max(n.cfg.FailoverTicks/2, 2*n.cfg.HeartbeatTicks)
	for _, id := range n.others {
		p := n.peers[id]
		if p.snapshotAgo >= 0 {
			p.snapshotAgo++
			if p.snapshotAgo >= max(n.cfg.FailoverTicks/2, 1) && p.heardAgo < n.cfg.FailoverTicks {
				n.needSnapshot(p)
			}
		}
		if !p.replicating {
			continue
		}
		if len(p.inflight) > 0 {
			p.sinceProgress++
			if p.sinceProgress >= retry {
				// Appends or their acks were lost (a broken connection):
				// resend from the last acknowledged offset.
				p.next, p.inflight, p.sinceProgress = p.match+1, nil, 0
			}
		}
		n.sendAppends(p)
		if p.outAt != 0 && !p.outAcked {
			if heartbeat {
				m := n.msg(MsgOut, id)
				m.At = p.outAt
				n.send(m)
			}
		}
	}
	n.updateISR()
	n.maybeCommit()
	n.maybeHandOver()
}

// broadcastAppends sends new records to every replicating backup.
func (n *Node) broadcastAppends() {
	for _, id := range n.others {
		n.sendAppends(n.peers[id])
	}
}

// sendAppends streams records to p in batches of MaxBatchBytes, with at most
// MaxInflight unacknowledged batches.
func (n *Node) sendAppends(p *peer) {
	if p.replicating && (p.match >= p.next || p.next > n.lv.last+1) {
		panic(fmt.Sprintf("replica: progress of %s: match %d, next %d, last %d", p.id, p.match, p.next, n.lv.last))
	}
	for p.replicating && len(p.inflight) < n.cfg.MaxInflight && p.next <= n.lv.last && n.stopped == nil {
		if p.next < n.lv.log.First() {
			// Its next record is compacted here: only a snapshot can bring
			// it up to where this log starts.
			n.needSnapshot(p)
			return
		}
		recs, err := n.lv.read(p.next, n.cfg.MaxBatchBytes)
		if err != nil {
			n.stop(err)
			return
		}
		m := n.msg(MsgAppend, p.id)
		m.Prev, m.PrevEpoch = p.next-1, n.lv.epochAt(p.next-1)
		m.Records, m.Commit = recs, n.commit
		if n.earlyOK(p, recs) {
			n.early = append(n.early, m)
		} else {
			p.lateAppend = true
			n.send(m)
		}
		p.next += eventlog.Offset(len(recs))
		p.inflight = append(p.inflight, p.next-1)
	}
}

// needSnapshot stops streaming to p, whose next record is compacted here,
// and tells it (now, then every FailoverTicks/2 until it fetches again from
// a position this log can serve) that it needs a snapshot: the shell sees
// the message leave and streams it the latest one. What it holds is left as
// it is until the snapshot is installed.
func (n *Node) needSnapshot(p *peer) {
	if p.replicating || p.snapshotAgo < 0 || p.snapshotAgo >= max(n.cfg.FailoverTicks/2, 1) {
		n.logger.Info("backup needs a snapshot: its next record is compacted here", "peer", p.id,
			"next", p.next, "first", n.lv.log.First())
		m := n.msg(MsgSnapshot, p.id)
		m.At = n.lv.log.First() - 1
		n.send(m)
		p.snapshotAgo = 0
	}
	p.replicating, p.inflight = false, nil
}

// earlyOK reports whether an Append of recs to p may leave before the pending
// Ready is persisted (Ready.EarlyMessages), overlapping this node's write
// with the backup's (Raft thesis 10.2.1). It is safe because commit counts
// this node only for what it persisted (durable), so a record it sent but
// never persisted (it crashed) is uncommitted, like any record a backup holds
// beyond the primary; and log matching holds because only this node assigns
// offsets in its epoch, and it never reassigns one while primary of it. The
// exceptions keep what the early copy could let a backup believe:
//
//   - a pending hard state (a new epoch or vote): a backup must not act on
//     an epoch this node could forget (it would then run for it again);
//   - a pending truncation: the records' offsets are not settled on disk;
//   - protocol records not yet durable here: an ISR record makes its
//     members eligible (incarnation rule) and a crash before persisting it
//     would let this node restart with an older ISR, for example itself
//     alone, and lead at once while a backup holding the lost record leads
//     too;
//   - an Append to p already queued after persistence: order per peer.
func (n *Node) earlyOK(p *peer, recs []eventlog.Record) bool {
	if n.hardDirty || n.truncPending || p.lateAppend {
		return false
	}
	for _, r := range recs {
		if r.Offset > n.lv.stableLast && isProtocolRecord(r) {
			return false
		}
	}
	return true
}

// handleAppendResp (primary).
func (n *Node) handleAppendResp(p *peer, m Message) {
	if n.role != RolePrimary || !p.replicating {
		return
	}
	if m.Reject {
		// A gap: resume from the backup's end (its log is a prefix of ours
		// since it matched in this epoch).
		if m.LastOffset < p.match {
			// Cannot happen: a backup's log never shrinks within an epoch
			// once it matched. Resynchronise rather than stall.
			n.logger.Error("backup's log shorter than its acknowledgement", "peer", p.id, "match", p.match, "last", m.LastOffset)
		}
		p.match = min(m.LastOffset, n.lv.last)
		p.next, p.inflight, p.sinceProgress = p.match+1, nil, 0
		n.sendAppends(p)
		return
	}
	if m.LastOffset > p.match && m.LastOffset <= n.lv.last {
		p.match = m.LastOffset
		p.sinceProgress = 0
	}
	for len(p.inflight) > 0 && p.inflight[0] <= p.match {
		p.inflight = p.inflight[1:]
	}
	if p.next <= p.match {
		p.next = p.match + 1
	}
	n.sendAppends(p)
	n.updateISR()
	n.maybeCommit()
}

// noteEnd records the log end at this tick, so that lagging can compare a
// backup's match with the log end LagTicks ago.
func (n *Node) noteEnd() {
	n.ends[n.now%int64(len(n.ends))] = n.lv.last
}

// lagging reports whether p has not acknowledged what the log held LagTicks
// ago: it is alive (else rule (a) applies) but falling behind.
func (n *Node) lagging(p *peer) bool {
	if n.now-n.primarySince < int64(n.cfg.LagTicks) {
		return false
	}
	old := n.ends[(n.now+1)%int64(len(n.ends))]
	return p.match < old
}

// maybeCommit raises commit to the highest offset durable on every member
// of the ISR in effect (the latest ISR record, effective once appended).
func (n *Node) maybeCommit() {
	if n.role != RolePrimary {
		return
	}
	n.maybeStable()
	c := n.durable
	for _, m := range n.logISR.members {
		if m.ID == n.cfg.ID {
			continue
		}
		p := n.peers[m.ID]
		if p == nil || !p.replicating {
			return
		}
		c = min(c, p.match)
	}
	n.advanceCommit(c)
}

// maybeStable raises stable to the highest offset durable on every replica
// of the cluster, ISR member or not, when this primary knows where every
// one stands. Such a record is on every side of any partition, so no
// replica ever truncates it.
func (n *Node) maybeStable() {
	s := n.durable
	for _, id := range n.others {
		p := n.peers[id]
		if !p.replicating {
			return
		}
		s = min(s, p.match)
	}
	n.advanceStable(s)
}

// updateISR appends an ISR record when membership should change.
//
// A member leaves only if (a) it has been silent for FailoverTicks: under
// fail-stop it crashed, and a crashed replica restarts knowing it restarted
// (recovering), so it will not believe itself in the ISR; or (b) it
// acknowledged MsgOut: a live, lagging member learns of its removal before
// the removal can take effect, otherwise it could later take over alone
// believing itself in sync, and miss what was committed without it.
//
// A replica (re)joins once everything has been sent to it and at most one
// batch is unacknowledged; a member that restarted is re-recorded with its new
// incarnation, which tells it that it is in sync again.
func (n *Node) updateISR() {
	if n.role != RolePrimary || n.stopped != nil {
		return
	}
	var want []ISRMember
	for _, m := range n.logISR.members {
		if m.ID == n.cfg.ID {
			want = append(want, m)
			continue
		}
		p := n.peers[m.ID]
		if p == nil {
			continue // not a configured peer any more
		}
		switch {
		case p.heardAgo >= n.cfg.FailoverTicks:
			continue // (a) crashed
		case p.outAcked:
			continue // (b) knows it is out
		case !sameDisk(m, p):
			// (c) its data directory was replaced: the member is gone, and
			// the replica answering under its id knows it is not that
			// member (isMe), so it needs no warning. It joins again below
			// once caught up, under its new identity.
			n.logger.Warn("isr member's data directory was replaced; it rejoins as a new member once caught up",
				"peer", p.id, "isr_disk", fmt.Sprintf("%016x", m.Disk), "disk", fmt.Sprintf("%016x", p.disk))
			continue
		}
		// Re-recorded under its new incarnation only when no removal is
		// under way: a record naming it after MsgOut tells the member it is
		// back in, and the removal its acknowledgement then completes would
		// leave it believing so while commits go on without it (simulator,
		// tcp seed 2379 at 2000 ticks; the join below has the same rule).
		if (p.incarnation != m.Incarnation || (m.Disk == 0 && p.disk != 0)) && p.outAt == 0 && n.caughtUp(p) {
			m.Incarnation, m.Disk = p.incarnation, p.disk
		}
		want = append(want, m)
		if p.outAt == 0 && (n.lagging(p) || p.diskFull) {
			n.logger.Warn("isr member lagging or out of disk space; telling it that it is out", "peer", p.id,
				"match", p.match, "last", n.lv.last, "disk_full", p.diskFull)
			p.outAt = n.lv.last
			o := n.msg(MsgOut, p.id)
			o.At = p.outAt
			n.send(o)
		}
	}
	for _, id := range n.others {
		p := n.peers[id]
		if n.logISR.contains(id) || !n.caughtUp(p) || p.heardAgo >= n.cfg.FailoverTicks || p.outAt != 0 || p.diskFull {
			continue
		}
		want = append(want, ISRMember{ID: id, Incarnation: p.incarnation, Disk: p.disk})
	}
	sortMembers(want)
	if sameMembers(want, n.logISR.members) {
		return
	}
	n.logger.Info("isr change", "from", n.logISR.ids(), "to", isrView{members: want}.ids(), "epoch", n.epoch)
	for _, id := range n.others {
		if p := n.peers[id]; !slices.ContainsFunc(want, func(m ISRMember) bool { return m.ID == id }) {
			p.outAt, p.outAcked = 0, false
		}
	}
	n.propose([]eventlog.Record{n.isrChange(want)})
}

// caughtUp reports whether p may be recorded as an ISR member now: it
// durably holds everything committed (so the record naming it cannot name a
// replica lacking a committed record: from the record on, commit waits for
// it), everything has been sent to it, and at most one batch is
// unacknowledged ("within one batch of the log end").
func (n *Node) caughtUp(p *peer) bool {
	return p.replicating && p.match >= n.commit && p.next > n.lv.last && len(p.inflight) <= 1
}
