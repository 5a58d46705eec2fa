package replica

import (
	"fmt"

	"github.com/replichat/replichat/eventlog"
)

// Step hands the node a message from a peer. Messages may arrive late,
// twice, out of order or not at all; Step copes. It returns an error only for
// a message that cannot come from this cluster (ErrUnknownPeer) or once the
// node has stopped.
func (n *Node) Step(m Message) error {
	if err := n.check(); err != nil {
		return err
	}
	p := n.peers[m.From]
	if p == nil || m.To != n.cfg.ID {
		return fmt.Errorf("step %s from %s to %s: %w", m.Type, m.From, m.To, ErrUnknownPeer)
	}
	p.heardAgo = 0
	if m.Disk != 0 && m.Disk != p.disk {
		// The first we hear of this data directory, or a new one (the
		// peer's disk was replaced): its incarnations count from its own
		// first start.
		p.disk, p.incarnation = m.Disk, m.Incarnation
	} else {
		p.incarnation = max(p.incarnation, m.Incarnation)
	}
	p.recovering = m.Recovering
	p.diskFull = m.DiskFull
	if len(m.ISR) > 0 {
		// Only messages that carry the sender's ISR count as "heard from"
		// for recovery: a recovering node must learn what its peers know.
		// And not a primary's: a live primary may drop this (restarted,
		// hence silent) replica from the ISR and commit without it right
		// after it spoke, so a recovering replica following a primary
		// recovers only when that primary records it in the ISR again.
		switch {
		case m.Role == RolePrimary && m.Epoch >= n.epoch:
			for _, q := range n.peers {
				q.heard = false
			}
		case m.SeenIncarnation == n.incarnation:
			p.heard = true
		}
		v := isrView{members: m.ISR, epoch: m.ISREpoch, at: m.ISRAt}
		if v.newer(n.isr()) {
			n.learnedISR = v
		}
	}
	switch {
	case m.Epoch > n.epoch:
		n.logger.Info("adopting newer epoch", "epoch", m.Epoch, "from", m.From, "was", n.role)
		n.epoch, n.vote, n.hardDirty = m.Epoch, None, true
		n.becomeBackup(None)
	case m.Epoch < n.epoch:
		// Fence: tell the stale sender our epoch; it adopts it and steps
		// down. Responses need no answer (their sender has moved on).
		if m.Type == MsgAppend || m.Type == MsgHeartbeat || m.Type == MsgVote || m.Type == MsgFetch || m.Type == MsgResubmit {
			n.send(n.heartbeat(m.From))
		}
		n.checkRecovered()
		return nil
	}
	if m.Role == RolePrimary {
		switch n.role {
		case RolePrimary:
			// Epochs are owned by one replica each, so two primaries in one
			// epoch cannot happen; a peer claiming it is a bug or corruption.
			n.logger.Error("another primary in my epoch; ignoring it", "epoch", n.epoch, "peer", m.From)
			return nil
		case RoleCandidate:
			n.becomeBackup(m.From)
		default:
			if n.primary != m.From {
				n.logger.Info("following primary", "primary", m.From, "epoch", n.epoch)
				n.primary, n.matched = m.From, false
				n.primaryStamp = 0
			}
		}
		// The failover timer restarts now, and the primary learns (from
		// the echo of its stamp) that it did: its read lease.
		n.failoverElapsed = 0
		n.primaryStamp = max(n.primaryStamp, m.Stamp)
	}
	if n.role == RolePrimary && m.Echo != 0 {
		// A stamp of this term (every stamp since primarySince is): the
		// peer reset its failover timer when that message arrived.
		if e := int64(m.Echo); e >= n.primarySince && e <= n.now && e > p.echo {
			p.echo = e
		}
	}
	switch m.Type {
	case MsgHeartbeat:
		n.handleHeartbeat(m)
	case MsgAppend:
		n.handleAppend(m)
	case MsgAppendResp:
		n.handleAppendResp(p, m)
	case MsgFetch:
		n.handleFetch(p, m)
	case MsgFetchResp:
		n.handleFetchResp(m)
	case MsgVote:
		n.handleVote(m)
	case MsgVoteResp:
		n.handleVoteResp(p, m)
	case MsgOut:
		if n.role == RoleBackup && m.From == n.primary {
			n.logger.Warn("primary is removing this replica from the isr", "primary", m.From, "at", m.At)
			n.out, n.outAt = true, max(n.outAt, m.At)
			r := n.msg(MsgOutAck, m.From)
			r.At = m.At
			n.send(r)
		}
	case MsgOutAck:
		if n.role == RolePrimary && p.outAt != 0 && m.At == p.outAt {
			p.outAcked = true
			n.updateISR()
		}
	case MsgResubmit:
		n.handleResubmit(m)
	case MsgSnapshot:
		if n.role == RoleBackup && m.From == n.primary && n.lv.last < m.At {
			// (A stale one, sent before this replica caught up or
			// installed one, is ignored: its log holds what it lacked.)
			if n.snapshotFrom != m.From {
				n.logger.Info("primary says this replica needs a snapshot: its log starts after offset", "primary", m.From, "at", m.At)
			}
			n.snapshotFrom, n.snapshotAt = m.From, max(n.snapshotAt, m.At)
		}
	case MsgResubmitResp:
		if n.rb.inflight && !n.rb.known && m.Count == n.rb.count && m.From == n.primary {
			n.rb.known, n.rb.upto, n.rb.uptoEpoch = true, m.LastOffset, m.LastEpoch
			n.maybeResubmit()
		}
	}
	n.checkRecovered()
	return nil
}

// msg returns a message of type t to peer to, stamped with this node's
// epoch, role and position.
func (n *Node) msg(t MsgType, to NodeID) Message {
	m := Message{
		Type: t, From: n.cfg.ID, To: to, Epoch: n.epoch, Role: n.role, Primary: n.primary,
		LastOffset: n.lv.last, LastEpoch: n.lv.lastEpoch, Incarnation: n.incarnation,
		Recovering: n.recovering, Eligible: n.eligible(), Disk: n.identity.Disk, Stamp: uint64(n.now),
		DiskFull: n.diskFull,
	}
	if p := n.peers[to]; p != nil {
		m.SeenIncarnation = p.incarnation
	}
	switch {
	case n.role == RolePrimary:
		m.Stable = n.stable
	case to == n.primary:
		m.Echo = n.primaryStamp
	}
	return m
}

func (n *Node) send(m Message) { n.msgs = append(n.msgs, m) }

// heartbeat returns this node's heartbeat to peer to.
func (n *Node) heartbeat(to NodeID) Message {
	m := n.msg(MsgHeartbeat, to)
	isr := n.isr()
	if n.role == RolePrimary {
		isr = n.logISR
		m.Commit = n.commit
		if p := n.peers[to]; p != nil && !p.replicating {
			m.Probe = true
		}
	}
	m.ISR, m.ISREpoch, m.ISRAt = isr.members, isr.epoch, isr.at
	return m
}

func (n *Node) broadcastHeartbeat() {
	for _, id := range n.others {
		n.send(n.heartbeat(id))
	}
}

// handleHeartbeat: a backup hearing its primary asks to catch up until its
// log is known to match, and advances its commit once it is.
func (n *Node) handleHeartbeat(m Message) {
	if n.role != RoleBackup || m.Role != RolePrimary || m.From != n.primary {
		return
	}
	if m.Probe && n.matched {
		n.matched = false
		n.fetchAgo = n.cfg.HeartbeatTicks
	}
	if !n.matched {
		if n.fetchAgo >= n.cfg.HeartbeatTicks {
			n.sendFetch()
		}
		return
	}
	n.advanceCommit(min(m.Commit, n.verified))
	n.advanceStable(min(m.Stable, n.verified))
}

// advanceStable raises the stable offset to s if higher.
func (n *Node) advanceStable(s eventlog.Offset) {
	n.stable = max(n.stable, s)
}

func (n *Node) sendFetch() {
	n.fetchAgo = 0
	n.send(n.msg(MsgFetch, n.primary))
}

// advanceCommit raises the commit offset to c if higher.
func (n *Node) advanceCommit(c eventlog.Offset) {
	if c > n.commit {
		n.commit = c
		n.maybeResubmit()
	}
}

// handleAppend (backup): records from the primary of our epoch.
func (n *Node) handleAppend(m Message) {
	if n.role != RoleBackup || m.From != n.primary {
		return
	}
	if n.diskFull {
		// Nothing is appended, nothing acknowledged: the primary removes
		// this replica from the ISR (it says DiskFull in every message).
		return
	}
	reply := func(reject bool, last eventlog.Offset) {
		r := n.msg(MsgAppendResp, m.From)
		r.Reject, r.LastOffset = reject, last
		n.send(r)
	}
	if m.Prev > n.lv.last {
		reply(true, n.lv.last) // a gap: an earlier Append was lost
		return
	}
	if m.Prev > 0 && (m.Prev+1 < n.lv.log.First() || n.lv.epochAt(m.Prev) != m.PrevEpoch) {
		// The logs diverge before these records: find where.
		n.matched = false
		n.sendFetch()
		return
	}
	recs := m.Records
	for len(recs) > 0 && recs[0].Offset <= n.lv.last {
		if n.lv.epochAt(recs[0].Offset) != recs[0].Epoch {
			// Log matching: a different epoch at one offset means a
			// different record; ours is not committed (the primary holds
			// every committed record), so it goes.
			n.truncate(recs[0].Offset - 1)
			if n.stopped != nil {
				return
			}
			break
		}
		recs = recs[1:]
	}
	if len(recs) > 0 {
		n.appendRecords(recs)
	}
	end := m.Prev + eventlog.Offset(len(m.Records))
	n.matched = true
	n.snapshotDone()
	n.verified = max(n.verified, end)
	n.advanceCommit(min(m.Commit, n.verified))
	n.advanceStable(min(m.Stable, n.verified))
	reply(false, end)
}

// handleFetch (primary): the catch-up request. If the backup's last record
// is in our history it may continue from there; otherwise tell it where our
// history up to its last epoch ends, so that it truncates there.
func (n *Node) handleFetch(p *peer, m Message) {
	if n.role != RolePrimary {
		return
	}
	e, end := n.lv.endFor(m.LastEpoch)
	r := n.msg(MsgFetchResp, m.From)
	// Echo the request's position: a late or duplicated answer to an older
	// request must not make the backup truncate what it has since received.
	r.Prev, r.PrevEpoch = m.LastOffset, m.LastEpoch
	if m.LastOffset+1 < n.lv.log.First() {
		// It holds less than what this log retains: whatever it holds,
		// only a snapshot can bring it to where this log starts.
		p.next = m.LastOffset + 1
		n.needSnapshot(p)
		return
	}
	if m.LastOffset == 0 || (e == m.LastEpoch && end >= m.LastOffset) {
		r.LastOffset, r.LastEpoch = m.LastOffset, m.LastEpoch
		n.send(r)
		p.replicating, p.match, p.next, p.inflight, p.sinceProgress = true, m.LastOffset, m.LastOffset+1, nil, 0
		p.snapshotAgo = -1
		n.sendAppends(p)
		n.maybeCommit()
		return
	}
	p.replicating = false
	r.Reject, r.LastOffset, r.LastEpoch = true, end, e
	n.send(r)
}

// handleFetchResp (backup).
func (n *Node) handleFetchResp(m Message) {
	if n.role != RoleBackup || m.From != n.primary || m.Prev != n.lv.last || m.PrevEpoch != n.lv.lastEpoch {
		return
	}
	if !m.Reject {
		if m.LastOffset <= n.lv.last && n.lv.epochAt(m.LastOffset) == m.LastEpoch {
			n.matched = true
			n.snapshotDone()
			n.verified = max(n.verified, m.LastOffset)
		}
		return
	}
	// Our history diverges from the primary's after the point where both
	// agree: the primary's end of epoch m.LastEpoch, or ours if earlier.
	_, mine := n.lv.endFor(m.LastEpoch)
	n.truncate(min(mine, m.LastOffset))
	if n.stopped == nil {
		n.sendFetch()
	}
}

// snapshotDone forgets that this backup needed a snapshot once the primary
// streams it records again (it installed one, or the message was stale):
// its status must not keep saying it waits for one.
func (n *Node) snapshotDone() {
	if n.snapshotFrom != None && n.lv.last >= n.snapshotAt {
		n.snapshotFrom = None
	}
}
