package replica

import (
	"cmp"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"

	"github.com/replichat/replichat/eventlog"
)

// peer is what a node tracks about another replica.
type peer struct {
	id NodeID
	// heardAgo counts ticks since any message from the peer arrived. A peer
	// silent for FailoverTicks is treated as crashed (fail-stop). It starts
	// at 0: a node that just started assumes everyone may be alive.
	heardAgo int
	// heard is true once a message from the peer arrived since this node
	// (re)started or resumed from a long pause.
	heard bool
	// What the peer last told about itself.
	incarnation uint64
	recovering  bool

	// Primary-side replication progress, reset when this node becomes primary.
	// Invariant while replicating: match < next <= last+1; inflight holds the
	// end offsets of unacknowledged Append messages, ascending, each in
	// (match, next-1]; len(inflight) <= MaxInflight.
	replicating bool
	match       eventlog.Offset
	next        eventlog.Offset
	inflight    []eventlog.Offset
	// sinceProgress counts ticks with Appends outstanding and no ack.
	sinceProgress int
	// outAt is the log end when this primary told the peer it is being
	// removed (0: not told); outAcked once it acknowledged.
	outAt    eventlog.Offset
	outAcked bool
	// granted is true if the peer voted for this node in its current epoch.
	granted bool
	// lateAppend is true once an Append to the peer was queued in the
	// pending Ready's Messages (not EarlyMessages): every later Append to it
	// in the same Ready must follow it, so they are queued there too.
	lateAppend bool
}

// Node is the replication protocol of one replica: a deterministic state
// machine with no goroutines, clock or I/O. See the package documentation
// for how to drive it. Not safe for concurrent use: one goroutine owns it.
type Node struct {
	cfg    Config
	logger *slog.Logger
	rng    *rand.Rand
	// others lists the peers except this node, sorted.
	others []NodeID
	peers  map[NodeID]*peer
	// stopped is set when a log read failed; every call then returns it.
	stopped error

	// Hard state. Invariant: vote is the vote cast in epoch (None if none).
	epoch       eventlog.Epoch
	vote        NodeID
	incarnation uint64
	hardDirty   bool

	role    Role
	primary NodeID

	lv logView
	// durable is the last offset known persisted (what this node may count
	// for itself toward commit). Invariant: commit <= durable <= lv.last on
	// the primary.
	durable eventlog.Offset
	// Pending persistence, handed out by Ready.
	truncPending  bool
	truncAfter    eventlog.Offset
	newEpochs     []eventlog.EpochStart
	discardQueued int
	msgs          []Message
	// early holds Appends that may leave before the pending Ready is
	// persisted (Ready.EarlyMessages; see earlyOK).
	early []Message
	// appendsDue is set when records were proposed since the last Ready:
	// Ready sends them to the backups then, so that every proposal taken in
	// one loop iteration shares one Append per backup.
	appendsDue bool
	// readyOut is true between Ready and Advance; calling anything else then
	// is a caller bug.
	readyOut bool

	// commit is the highest offset known durable on every ISR member.
	// It only decreases if a fork (after a partition) truncates below it.
	commit         eventlog.Offset
	reportedCommit eventlog.Offset
	commitReported bool
	// verified is the backup's highest offset known to match the current
	// primary's log (in this epoch). Invariant: verified <= lv.last.
	verified eventlog.Offset
	matched  bool
	fetchAgo int

	// logISR is the latest ISR record in the log (including the unstable
	// tail): the ISR in effect, used by the primary to commit. learnedISR is
	// a newer ISR reported by a peer. Eligibility uses the newer of the two.
	logISR     isrView
	learnedISR isrView
	// isrSaved is the ISRIndex the log holds (valid if isrSavedOK); a Ready
	// rewrites it whenever logISR moves elsewhere.
	isrSaved   ISRIndex
	isrSavedOK bool

	// recovering is true from start (or a long pause) until the node has
	// heard from every member of the newest ISR it knows, or appended an ISR
	// record naming its current incarnation. A recovering node never runs
	// for primary.
	recovering bool
	// out is true once the primary told this node it is leaving the ISR
	// (MsgOut at offset outAt); it clears on an ISR record after outAt that
	// includes the node.
	out   bool
	outAt eventlog.Offset

	now              int64
	heartbeatElapsed int
	// failoverElapsed counts ticks without hearing from a primary; at
	// failoverTimeout (FailoverTicks plus jitter) an eligible backup runs.
	failoverElapsed int
	failoverTimeout int
	// electionElapsed counts ticks since this node became candidate.
	electionElapsed int
	// primarySince is the tick this node became primary; ends[t % len] is
	// the log end at tick t, for the last LagTicks+1 ticks (primary only).
	primarySince int64
	ends         []eventlog.Offset

	rb resubmission
}

// resubmission tracks the re-submission of the rollback area's head.
type resubmission struct {
	// pending: the rollback area may hold entries.
	pending bool
	// inflight: count entries were sent (or proposed); once the record at
	// upto, of epoch uptoEpoch, is committed, they are discarded.
	inflight  bool
	known     bool
	count     int
	upto      eventlog.Offset
	uptoEpoch eventlog.Epoch
	sentAgo   int
}

// NewNode returns a node that resumes from log: its durable records, epoch
// history and hard state. Every NewNode is a restart: the node is recovering
// until it has heard from the members of its last ISR (unless that ISR was
// itself alone, in which case it leads at once). The first Ready persists its
// incremented incarnation.
func NewNode(cfg Config, log LogReader) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:     cfg,
		logger:  cfg.Logger.With("node", cfg.ID),
		rng:     rand.New(rand.NewPCG(cfg.Seed, uint64(cfg.ID))),
		peers:   map[NodeID]*peer{},
		vote:    None,
		primary: None,
	}
	for _, p := range slices.Sorted(slices.Values(cfg.Peers)) {
		if p != cfg.ID {
			n.others = append(n.others, p)
			n.peers[p] = &peer{id: p}
		}
	}
	b, ok, err := log.Meta(HardStateKey)
	if err != nil {
		return nil, fmt.Errorf("read hard state: %w", err)
	}
	var hs HardState
	if ok {
		if hs, err = DecodeHardState(b); err != nil {
			return nil, err
		}
	}
	n.lv = logView{log: log, stableLast: log.Last(), last: log.Last(), lastEpoch: log.LastEpoch(), epochs: log.Epochs()}
	n.durable = n.lv.last
	if err := n.repairEpochs(); err != nil {
		return nil, err
	}
	n.epoch, n.vote = hs.Epoch, hs.Vote
	if hs.Epoch == 0 {
		n.vote = None
	}
	if le := n.lastHistoryEpoch(); le > n.epoch {
		n.epoch, n.vote = le, None
	}
	n.incarnation = hs.Incarnation + 1
	n.hardDirty = true
	if err := n.loadISR(log); err != nil {
		return nil, fmt.Errorf("find latest isr: %w", err)
	}
	rb, err := log.RolledBack(1)
	if err != nil {
		return nil, fmt.Errorf("read rollback area: %w", err)
	}
	n.rb.pending = len(rb) > 0
	n.recovering = true
	n.resetFailoverTimeout()
	n.logger.Info("replica started", "epoch", n.epoch, "offset", n.lv.last, "incarnation", n.incarnation,
		"isr", n.isr().ids())
	if isr := n.isr(); len(isr.members) == 1 && isr.members[0].ID == cfg.ID {
		// Alone in its last ISR: no other replica can hold a committed
		// record this one lacks, so it may lead at once.
		n.recovering = false
		n.campaign(false)
	}
	return n, nil
}

// loadISR finds the ISR in effect at the log's end through the ISRIndex, so
// that start-up reads a record or two whatever the log's length. The index
// is written before the Append of an ISR record and after a Truncate (Ready
// order), so the record it names is the latest one if it is there; if it is
// not, the Ready writing it was interrupted and the record before it (Prev)
// is the latest. Only a log without an index (written before it existed),
// or a crash that also lost Prev, is scanned back.
func (n *Node) loadISR(log LogReader) error {
	b, ok, err := log.Meta(ISRIndexKey)
	if err != nil {
		return fmt.Errorf("read isr index: %w", err)
	}
	if ok {
		x, err := DecodeISRIndex(b)
		if err != nil {
			n.logger.Warn("unreadable isr index; scanning the log", "err", err)
			return n.scanISR()
		}
		if x.At == 0 {
			n.logISR = initialISR(n.cfg.Peers)
			n.isrSaved, n.isrSavedOK = x, true
			return nil
		}
		v, found, err := n.lv.isrRecord(x.At, x.Epoch)
		if err != nil {
			return err
		}
		if found {
			n.logISR = v
			n.isrSaved, n.isrSavedOK = x, true
			return nil
		}
		if x.Chained {
			if x.PrevAt == 0 {
				n.logISR = initialISR(n.cfg.Peers)
				return nil
			}
			v, found, err := n.lv.isrRecord(x.PrevAt, x.PrevEpoch)
			if err != nil {
				return err
			}
			if found {
				n.logISR = v
				return nil
			}
		}
		n.logger.Warn("isr index names records the log does not hold; scanning the log", "at", x.At, "prev", x.PrevAt)
	}
	return n.scanISR()
}

func (n *Node) scanISR() error {
	isr, err := n.lv.latestISR(n.lv.last, n.cfg.Peers)
	if err != nil {
		return err
	}
	n.logISR = isr
	return nil
}

// isrChange returns an ISR record naming members, chained to the ISR record
// before it.
func (n *Node) isrChange(members []ISRMember) eventlog.Record {
	return eventlog.Record{Type: TypeISR, Data: mustMarshal(&ISRChange{Members: members,
		Chained: true, PrevAt: n.logISR.at, PrevEpoch: n.logISR.epoch})}
}

// repairEpochs adds the history entries of records appended by a Ready whose
// AddEpoch step did not complete before a crash.
func (n *Node) repairEpochs() error {
	lastHist := n.lastHistoryEpoch()
	if n.lv.last == 0 || n.lv.lastEpoch <= lastHist {
		return nil
	}
	var starts []eventlog.EpochStart
	err := n.lv.scanBack(n.lv.last, func(r eventlog.Record) bool {
		if r.Epoch <= lastHist {
			return true
		}
		if len(starts) > 0 && starts[0].Epoch == r.Epoch {
			starts[0].Start = r.Offset
		} else {
			starts = append([]eventlog.EpochStart{{Epoch: r.Epoch, Start: r.Offset}}, starts...)
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("repair epoch history: %w", err)
	}
	n.logger.Warn("repairing epoch history after an interrupted write", "entries", len(starts))
	n.lv.epochs = append(n.lv.epochs, starts...)
	n.newEpochs = append(n.newEpochs, starts...)
	return nil
}

func (n *Node) lastHistoryEpoch() eventlog.Epoch {
	if k := len(n.lv.epochs); k > 0 {
		return n.lv.epochs[k-1].Epoch
	}
	return 0
}

// isr returns the newest ISR this node knows of.
func (n *Node) isr() isrView {
	if n.learnedISR.newer(n.logISR) {
		return n.learnedISR
	}
	return n.logISR
}

// eligible reports whether this node may run for primary (all mode): not
// recovering, not told it is out, and a member of the newest ISR it knows
// in a way that proves it holds every committed record: either the
// membership predates its last restart (so commits waited for its acks ever
// since), or its own log holds an ISR record naming its current incarnation
// (it was caught up there, and has been a member continuously since: a
// removal would have needed its silence, which means a restart or a long
// pause and so a new incarnation, or its acknowledgment of MsgOut).
func (n *Node) eligible() bool {
	if n.recovering || n.out || n.stopped != nil {
		return false
	}
	me, ok := n.isr().member(n.cfg.ID)
	if !ok {
		return false
	}
	if me.Incarnation < n.incarnation {
		return true
	}
	mine, ok := n.logISR.member(n.cfg.ID)
	return ok && mine.Incarnation == n.incarnation
}

func (n *Node) check() error {
	if n.stopped != nil {
		return n.stopped
	}
	if n.readyOut {
		panic("replica: Node called between Ready and Advance")
	}
	return nil
}

// stop makes the node inoperable after a log read error.
func (n *Node) stop(err error) {
	if n.stopped == nil {
		n.stopped = fmt.Errorf("%w: %w", ErrStopped, err)
		n.logger.Error("replica stopped", "err", err)
	}
}

// HasReady reports whether Ready would return work.
func (n *Node) HasReady() bool {
	if n.stopped != nil {
		return false
	}
	_, ok := n.peekReady()
	return ok || n.appendsDue
}

func (n *Node) peekReady() (Ready, bool) {
	rd := Ready{Commit: n.commit}
	if n.hardDirty {
		rd.HardState = &HardState{Epoch: n.epoch, Vote: n.vote, Incarnation: n.incarnation}
	}
	if n.truncPending {
		rd.Truncate, rd.TruncateAfter = true, n.truncAfter
	}
	rd.Records = n.lv.unstable
	rd.Epochs = n.newEpochs
	rd.DiscardRolledBack = n.discardQueued
	if x := n.logISR.index(); !n.isrSavedOK || x != n.isrSaved {
		rd.ISRIndex = &x
	}
	rd.Messages = n.msgs
	if len(n.early) > 0 {
		if rd.HardState != nil || rd.Truncate {
			// The epoch or the log changed after these Appends were queued:
			// hold them back with the rest (see earlyOK). Early Appends of a
			// peer precede its late ones, so putting them first keeps the
			// per-peer order.
			rd.Messages = append(slices.Clip(n.early), n.msgs...)
		} else {
			rd.EarlyMessages = n.early
		}
	}
	return rd, !rd.empty() || !n.commitReported || n.commit != n.reportedCommit
}

// Ready returns the work the caller must do now, and false if there is none.
// Between Ready and Advance the caller must not call any other method.
func (n *Node) Ready() (Ready, bool) {
	if n.stopped != nil {
		return Ready{}, false
	}
	if n.readyOut {
		panic("replica: Ready called twice without Advance")
	}
	if n.appendsDue {
		n.appendsDue = false
		if n.role == RolePrimary {
			n.broadcastAppends()
		}
		if n.stopped != nil {
			return Ready{}, false
		}
	}
	rd, ok := n.peekReady()
	if !ok {
		return Ready{}, false
	}
	rd.Records = slices.Clone(rd.Records)
	rd.Epochs = slices.Clone(rd.Epochs)
	n.readyOut = true
	return rd, true
}

// Advance tells the node that the caller did everything rd asked.
func (n *Node) Advance(rd Ready) {
	if !n.readyOut {
		panic("replica: Advance without Ready")
	}
	n.readyOut = false
	n.hardDirty = false
	n.truncPending = false
	n.lv.stableLast = n.lv.last
	n.lv.unstable = nil
	n.newEpochs = nil
	n.discardQueued = 0
	if rd.ISRIndex != nil {
		n.isrSaved, n.isrSavedOK = *rd.ISRIndex, true
	}
	n.msgs = nil
	n.early = nil
	for _, p := range n.peers {
		p.lateAppend = false
	}
	n.reportedCommit, n.commitReported = rd.Commit, true
	n.durable = n.lv.last
	if rd.Truncate {
		n.rb.pending = true
	}
	if n.role == RolePrimary {
		n.maybeCommit()
	}
	n.maybeResubmit()
}

// Propose appends recs to the log (primary only), assigning their offsets
// and epoch; the caller sets Type, Data, ClientID, Seq and Time. It returns
// the offset of the last one. They are committed when Ready.Commit reaches
// it, unless a failover truncates them first: the caller should treat a
// client request as done when it applies a record carrying its (client, seq).
func (n *Node) Propose(recs []eventlog.Record) (last eventlog.Offset, err error) {
	if err := n.check(); err != nil {
		return 0, err
	}
	if n.role != RolePrimary {
		return 0, &NotPrimaryError{Primary: n.primary, Waiting: n.waiting()}
	}
	if len(recs) == 0 {
		return 0, ErrEmptyProposal
	}
	if int(n.lv.last-n.commit)+len(recs) > n.cfg.MaxUncommitted {
		return 0, ErrBackpressure
	}
	return n.propose(recs), nil
}

// propose appends copies of recs in the current epoch and replicates them.
func (n *Node) propose(recs []eventlog.Record) eventlog.Offset {
	out := make([]eventlog.Record, len(recs))
	for i, r := range recs {
		r.Offset = n.lv.last + 1 + eventlog.Offset(i)
		r.Epoch = n.epoch
		out[i] = r
	}
	n.appendRecords(out)
	// Sent by the next Ready, with whatever else is proposed before it.
	n.appendsDue = true
	return n.lv.last
}

// appendRecords adds recs to the unstable tail, updating the epoch history
// and the ISR in effect. recs must follow lv.last.
func (n *Node) appendRecords(recs []eventlog.Record) {
	for _, r := range recs {
		if r.Offset != n.lv.last+1 || r.Epoch < n.lv.lastEpoch {
			panic(fmt.Sprintf("replica: append offset %d epoch %d after %d epoch %d", r.Offset, r.Epoch, n.lv.last, n.lv.lastEpoch))
		}
		if r.Epoch > n.lastHistoryEpoch() {
			es := eventlog.EpochStart{Epoch: r.Epoch, Start: r.Offset}
			n.lv.epochs = append(n.lv.epochs, es)
			n.newEpochs = append(n.newEpochs, es)
		}
		n.lv.unstable = append(n.lv.unstable, r)
		n.lv.last, n.lv.lastEpoch = r.Offset, r.Epoch
		if r.Type == TypeISR {
			n.applyISRRecord(r)
		}
	}
}

// applyISRRecord makes an appended ISR record the ISR in effect.
func (n *Node) applyISRRecord(r eventlog.Record) {
	isr, err := isrFromRecord(r)
	if err != nil {
		// Records come from the log or a primary running this code.
		panic(fmt.Sprintf("replica: %v", err))
	}
	n.logISR = isr
	me, in := n.logISR.member(n.cfg.ID)
	if in && n.out && r.Offset > n.outAt {
		n.out, n.outAt = false, 0
	}
	if in && n.recovering && me.Incarnation == n.incarnation {
		// A primary saw this incarnation caught up and made it a member:
		// it holds every committed record.
		n.recovering = false
		n.logger.Info("rejoined the isr", "epoch", r.Epoch, "offset", r.Offset)
	}
}

// truncate drops every record after off from the view (the caller will
// move them to the rollback area).
func (n *Node) truncate(off eventlog.Offset) {
	if off >= n.lv.last {
		return
	}
	if off < n.commit {
		// Possible only when a partition forked the log (all mode is exact
		// under fail-stop only): records this node saw committed on its side
		// were not committed on the winning side. They go to the rollback
		// area and are re-submitted.
		n.logger.Warn("truncating below commit: the log forked", "commit", n.commit, "offset", off)
		n.commit = off
	}
	n.logger.Info("truncating divergent suffix", "after", off, "last", n.lv.last)
	// Found before the view drops the records: the chain may pass through
	// them.
	isr, err := n.lv.isrUpTo(n.logISR, off, n.cfg.Peers)
	if err != nil {
		n.stop(err)
		return
	}
	if off >= n.lv.stableLast {
		n.lv.unstable = n.lv.unstable[:off-n.lv.stableLast]
	} else {
		n.lv.unstable = nil
		if !n.truncPending || off < n.truncAfter {
			n.truncAfter = off
		}
		n.truncPending = true
		n.lv.stableLast = off
	}
	n.lv.last = off
	n.durable = min(n.durable, off)
	n.verified = min(n.verified, off)
	keep := func(es eventlog.EpochStart) bool { return es.Start <= off }
	n.lv.epochs = slices.DeleteFunc(n.lv.epochs, func(es eventlog.EpochStart) bool { return !keep(es) })
	n.newEpochs = slices.DeleteFunc(n.newEpochs, func(es eventlog.EpochStart) bool { return !keep(es) })
	n.lv.lastEpoch = n.lv.epochAt(off)
	n.logISR = isr
	n.learnedISR = isrView{}
}

// Tick advances the node's clock by one tick. The caller calls it at a
// fixed interval (the shell's TickInterval).
func (n *Node) Tick() {
	if n.check() != nil {
		return
	}
	n.now++
	for _, p := range n.peers {
		p.heardAgo++
	}
	n.heartbeatElapsed++
	heartbeat := n.heartbeatElapsed >= n.cfg.HeartbeatTicks
	if heartbeat {
		n.heartbeatElapsed = 0
		n.broadcastHeartbeat()
	}
	switch n.role {
	case RolePrimary:
		n.tickPrimary(heartbeat)
	case RoleCandidate:
		n.electionElapsed++
		n.checkElection()
	case RoleBackup:
		n.failoverElapsed++
		if n.primary != None && n.failoverElapsed >= n.cfg.FailoverTicks {
			n.logger.Info("primary silent; considering it crashed", "primary", n.primary, "epoch", n.epoch)
			n.primary, n.matched = None, false
		}
		n.fetchAgo++
		if n.failoverElapsed >= n.failoverTimeout && n.eligible() {
			n.campaign(false)
		}
	}
	n.rb.sentAgo++
	if n.rb.inflight && !n.rb.known && n.rb.sentAgo >= n.cfg.FailoverTicks {
		n.rb.inflight = false // lost: send again
	}
	n.maybeResubmit()
}

// Paused tells the node that it did not run for ticks ticks (the shell saw
// its timer fire that late, or the process was stopped). After a pause of
// PauseTicks or more, peers may have declared it crashed, so it behaves as
// if it had restarted: it steps down and becomes recovering.
func (n *Node) Paused(ticks int) {
	if n.check() != nil || ticks < n.cfg.PauseTicks {
		return
	}
	// If no peer was alive when the pause began (a one-replica cluster, or
	// the last replica standing), nobody can have moved on without this node
	// (see below): the pause changes nothing.
	alive := false
	for _, p := range n.peers {
		alive = alive || p.heardAgo < n.cfg.FailoverTicks
	}
	if !alive {
		return
	}
	n.logger.Warn("paused long enough to be considered crashed; recovering", "ticks", ticks, "role", n.role)
	n.becomeBackup(None)
	// A new incarnation, as after a restart: an ISR membership recorded
	// before the pause no longer proves this node is in sync.
	n.incarnation++
	n.hardDirty = true
	n.recovering = true
	n.out = false
	// The hazard of a pause is a live peer that declared this node crashed
	// meanwhile and moved on without it (dropped it from the ISR, or was
	// elected without it). A peer that had already been silent for
	// FailoverTicks before the pause began was crashed then (fail-stop; or
	// itself paused so long that it comes back recovering), so it cannot
	// have moved on without this node: it counts as heard from, and keeps
	// its silence, so that a last replica standing that stalls for a moment
	// does not wait forever for peers that are gone. Every other peer must be
	// heard from again.
	for _, p := range n.peers {
		if p.heardAgo >= n.cfg.FailoverTicks {
			p.heard = true
			continue
		}
		p.heard, p.heardAgo = false, 0
	}
	n.checkRecovered()
}

// ForceLead makes this node primary now, whatever it knows of the others:
// the operator's override for a cluster that cannot elect anyone (for
// example a restarted replica whose ISR peers are gone for good). It may
// lose committed records the others held. Never called automatically. A
// no-op on the primary.
func (n *Node) ForceLead() error {
	if err := n.check(); err != nil {
		return err
	}
	if n.role == RolePrimary {
		return nil
	}
	n.logger.Warn("operator forced this replica to lead; committed records held only by others may be lost",
		"epoch", n.epoch, "offset", n.lv.last, "isr", n.isr().ids())
	n.recovering, n.out = false, false
	n.campaign(true)
	return nil
}

func (n *Node) resetFailoverTimeout() {
	n.failoverElapsed = 0
	n.failoverTimeout = n.cfg.FailoverTicks + n.rng.IntN(n.cfg.FailoverTicks/2+1)
}

// PeerStatus is what Status reports about one replica.
type PeerStatus struct {
	ID NodeID
	// Match is the offset known replicated on it (primary only).
	Match eventlog.Offset
	// InSync is true if it is a member of the ISR in effect.
	InSync bool
	// HeardAgoTicks is the ticks since a message from it arrived.
	HeardAgoTicks int
	// Recovering is what it last said about itself.
	Recovering bool
}

// Status is a snapshot of the node's protocol state.
type Status struct {
	ID         NodeID
	Role       Role
	Epoch      eventlog.Epoch
	Primary    NodeID
	LogEnd     eventlog.Offset
	LastEpoch  eventlog.Epoch
	Commit     eventlog.Offset
	ISR        []NodeID
	Recovering bool
	Eligible   bool
	// Peers excludes this node, sorted by ID.
	Peers []PeerStatus
	// Waiting says, in words for an operator, why the node is not serving
	// or not in sync ("restarted; waiting to hear from replica 2"). Empty
	// when it is primary or an in-sync backup following a primary.
	Waiting string
	// Err is set once the node stopped after a log read error.
	Err error
}

// Match returns the offset peer id acknowledged holding durably, and true,
// while this node is primary; 0 and false otherwise. Cheaper than Status, for
// a caller sampling replication lag as acknowledgements arrive.
func (n *Node) Match(id NodeID) (eventlog.Offset, bool) {
	p := n.peers[id]
	if n.role != RolePrimary || p == nil {
		return 0, false
	}
	return p.match, true
}

// Status returns a snapshot of the node's state.
func (n *Node) Status() Status {
	s := Status{
		ID: n.cfg.ID, Role: n.role, Epoch: n.epoch, Primary: n.primary, LogEnd: n.lv.last,
		LastEpoch: n.lv.lastEpoch, Commit: n.commit, ISR: n.isr().ids(), Recovering: n.recovering,
		Eligible: n.eligible(), Waiting: n.waiting(), Err: n.stopped,
	}
	if n.role == RolePrimary {
		s.ISR = n.logISR.ids()
	}
	for _, id := range n.others {
		p := n.peers[id]
		s.Peers = append(s.Peers, PeerStatus{ID: id, Match: p.match, InSync: slices.Contains(s.ISR, id),
			HeardAgoTicks: p.heardAgo, Recovering: p.recovering})
	}
	return s
}

// waiting explains why the node is neither primary nor following one.
func (n *Node) waiting() string {
	switch {
	case n.stopped != nil:
		return "stopped: " + n.stopped.Error()
	case n.role == RolePrimary:
		return ""
	case n.role == RoleBackup && n.primary != None && n.recovering:
		return fmt.Sprintf("restarted; catching up with primary %s to rejoin the ISR", n.primary)
	case n.role == RoleBackup && n.primary != None:
		return ""
	}
	isr := n.isr()
	if n.recovering {
		var missing []NodeID
		for _, m := range isr.members {
			if p := n.peers[m.ID]; p != nil && !p.heard {
				missing = append(missing, m.ID)
			}
		}
		if len(missing) > 0 {
			return fmt.Sprintf("restarted; waiting to hear from %s of its last ISR %v", replicaList(missing), isr.ids())
		}
	}
	switch {
	case !isr.contains(n.cfg.ID):
		return fmt.Sprintf("not in the latest ISR %v; waiting for a primary", isr.ids())
	case n.out:
		return "removed from the ISR by the primary; waiting for a primary"
	case n.role == RoleCandidate:
		var missing []NodeID
		for _, m := range isr.members {
			if p := n.peers[m.ID]; p != nil && !p.granted && p.heardAgo < n.cfg.FailoverTicks {
				missing = append(missing, m.ID)
			}
		}
		return fmt.Sprintf("running for primary in epoch %d; waiting for %s", n.epoch, replicaList(missing))
	}
	return fmt.Sprintf("no primary; election after %d more ticks of silence", max(0, n.failoverTimeout-n.failoverElapsed))
}

func replicaList(ids []NodeID) string {
	if len(ids) == 1 {
		return "replica " + ids[0].String()
	}
	s := "replicas "
	for i, id := range ids {
		if i > 0 {
			s += ", "
		}
		s += id.String()
	}
	return s
}

func sortMembers(ms []ISRMember) {
	slices.SortFunc(ms, func(a, b ISRMember) int { return cmp.Compare(a.ID, b.ID) })
}
