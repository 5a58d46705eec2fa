package replica

import (
	"github.com/replichat/replichat/eventlog"
)

// nextEpoch returns the smallest epoch above e that this node owns. Each
// replica owns the epochs congruent to its rank (its index among the sorted
// peers) modulo the cluster size, so two replicas never run for the same
// epoch: at most one primary per epoch holds even when a partition lets two
// candidates each treat the other as crashed (all mode under partitions),
// and log matching by (epoch, offset) stays sound.
func (n *Node) nextEpoch(e eventlog.Epoch) eventlog.Epoch {
	size, rank := eventlog.Epoch(len(n.cfg.Peers)), eventlog.Epoch(n.rank())
	next := e + 1
	for (next-1)%size != rank {
		next++
	}
	return next
}

func (n *Node) rank() int {
	r := 0
	for _, p := range n.cfg.Peers {
		if p < n.cfg.ID {
			r++
		}
	}
	return r
}

// fresher reports whether log position (e1, o1) is fresher than (e2, o2):
// later last epoch, then higher last offset.
func fresher(e1 eventlog.Epoch, o1 eventlog.Offset, e2 eventlog.Epoch, o2 eventlog.Offset) bool {
	if e1 != e2 {
		return e1 > e2
	}
	return o1 > o2
}

// campaign runs for primary in the next epoch this node owns. It votes for
// itself (persisted before any request leaves) and asks every peer for its
// vote. forced (ForceLead) skips the votes.
func (n *Node) campaign(forced bool) {
	n.epoch = n.nextEpoch(n.epoch)
	n.vote, n.hardDirty = n.cfg.ID, true
	n.role, n.primary = RoleCandidate, None
	n.electionElapsed = 0
	for _, p := range n.peers {
		p.granted = false
	}
	n.logger.Info("running for primary", "epoch", n.epoch, "offset", n.lv.last, "isr", n.isr().ids(), "forced", forced)
	if forced {
		n.becomePrimary(true)
		return
	}
	for _, id := range n.others {
		n.send(n.heartbeatLike(MsgVote, id))
	}
	n.checkElection()
}

// heartbeatLike is a heartbeat of another type (votes carry the ISR too).
func (n *Node) heartbeatLike(t MsgType, to NodeID) Message {
	m := n.heartbeat(to)
	m.Type = t
	return m
}

// checkElection (candidate): win once every other member of the newest ISR
// known has granted its vote or has been silent for FailoverTicks (crashed,
// under fail-stop). Give up after a while so that timers run again.
func (n *Node) checkElection() {
	if n.role != RoleCandidate {
		return
	}
	if !n.eligible() {
		n.logger.Info("no longer eligible; abandoning candidacy", "epoch", n.epoch)
		n.becomeBackup(None)
		return
	}
	for _, m := range n.isr().members {
		if m.ID == n.cfg.ID {
			continue
		}
		p := n.peers[m.ID]
		if p != nil && !sameDisk(m, p) {
			// The member's data directory was replaced: the replica that
			// answers under its id holds nothing of it. The member is gone
			// as surely as if it had crashed for good.
			continue
		}
		if p != nil && !p.granted && p.heardAgo < n.cfg.FailoverTicks {
			if n.electionElapsed >= 2*n.cfg.FailoverTicks {
				n.logger.Info("election timed out", "epoch", n.epoch, "waiting_for", m.ID)
				n.becomeBackup(None)
			} else if n.electionElapsed > 0 && n.electionElapsed%n.cfg.HeartbeatTicks == 0 {
				n.send(n.heartbeatLike(MsgVote, m.ID))
			}
			return
		}
	}
	n.becomePrimary(false)
}

// handleVote: grant unless this node already voted for another candidate in
// this epoch, or its own log is fresher and it may lead itself (then it says
// so, and runs at once).
func (n *Node) handleVote(m Message) {
	r := n.heartbeatLike(MsgVoteResp, m.From)
	switch {
	case n.role == RolePrimary || (n.vote != None && n.vote != m.From):
		r.Reject = true
	case fresher(n.lv.lastEpoch, n.lv.last, m.LastEpoch, m.LastOffset) && n.eligible():
		r.Reject, r.Fresher = true, true
		if n.role == RoleBackup {
			n.failoverElapsed = n.failoverTimeout // run at the next tick
		}
	default:
		n.vote, n.hardDirty = m.From, true
		// (A vote repeated in the same epoch is to the same candidate; the
		// first grant's position stands.)
		if n.votedFor.epoch != m.Epoch {
			n.votedFor = votedLog{}
			if m.LastOffset <= n.lv.last && n.lv.epochAt(m.LastOffset) == m.LastEpoch {
				n.votedFor = votedLog{epoch: m.Epoch, lastEpoch: m.LastEpoch, last: m.LastOffset}
			}
		}
		n.resetFailoverTimeout()
		r.Eligible = n.eligible()
	}
	n.send(r) // sent after the vote is persisted (Ready order)
}

// handleVoteResp (candidate).
func (n *Node) handleVoteResp(p *peer, m Message) {
	if n.role != RoleCandidate || m.Epoch != n.epoch {
		return
	}
	if m.Reject {
		n.logger.Info("vote refused; yielding", "epoch", n.epoch, "by", m.From, "fresher", m.Fresher)
		n.becomeBackup(None)
		return
	}
	p.granted = true
	n.checkElection()
}

// becomePrimary: persist the epoch (hard state and history), write the
// epoch-start record and then the ISR record; nothing of the new epoch
// commits before every ISR member holds both.
func (n *Node) becomePrimary(forced bool) {
	n.role, n.primary = RolePrimary, n.cfg.ID
	n.primarySince = n.now
	n.ends = make([]eventlog.Offset, n.cfg.LagTicks+1)
	for i := range n.ends {
		n.ends[i] = n.lv.last
	}
	isr := []ISRMember{{ID: n.cfg.ID, Incarnation: n.incarnation, Disk: n.identity.Disk}}
	for _, m := range n.isr().members {
		if p := n.peers[m.ID]; p != nil && p.granted && !forced && sameDisk(m, p) {
			isr = append(isr, ISRMember{ID: m.ID, Incarnation: p.incarnation, Disk: p.disk})
		}
	}
	sortMembers(isr)
	for _, p := range n.peers {
		*p = peer{id: p.id, heardAgo: p.heardAgo, heard: p.heard, incarnation: p.incarnation, recovering: p.recovering,
			disk: p.disk, next: n.lv.last + 1, snapshotAgo: -1}
	}
	n.logger.Info("became primary", "epoch", n.epoch, "offset", n.lv.last, "isr", isrView{members: isr}.ids())
	n.propose([]eventlog.Record{
		{Type: TypeEpochStart, Data: mustMarshal(&EpochStartEvent{Epoch: n.epoch, Primary: uint32(n.cfg.ID)})},
		n.isrChange(isr),
	})
	n.learnedISR = isrView{}
	n.broadcastHeartbeat()
	n.maybeCommit()
	n.rb.inflight = false
	n.maybeResubmit()
}

// becomeBackup steps down (if needed) and follows primary (None: no primary
// known yet).
func (n *Node) becomeBackup(primary NodeID) {
	if n.role == RolePrimary {
		n.logger.Info("stepping down", "epoch", n.epoch)
		n.ends = nil
	}
	if primary != n.snapshotFrom {
		// Another primary may hold what this one lacked.
		n.snapshotFrom, n.snapshotAt = None, 0
	}
	n.role, n.primary = RoleBackup, primary
	n.matched = false
	n.verified = 0
	n.primaryStamp = 0
	n.fetchAgo = n.cfg.HeartbeatTicks
	n.rb.inflight = false
	n.resetFailoverTimeout()
}

// checkRecovered ends recovery once this node has heard from every member of
// the newest ISR it knows (following newer ISRs its peers report).
func (n *Node) checkRecovered() {
	if !n.recovering {
		return
	}
	for _, m := range n.isr().members {
		if p := n.peers[m.ID]; p != nil && !p.heard {
			return
		}
	}
	n.recovering = false
	n.logger.Info("heard from every member of the isr; may take part in elections", "isr", n.isr().ids())
}
