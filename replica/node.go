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
	// What the peer last told about itself. disk is its data directory
	// identity (0 until heard, or from a peer that predates identities).
	incarnation uint64
	recovering  bool
	disk        uint64
	diskFull    bool

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
	// echo is the latest of this primary's stamps (its clock when it sent a
	// message) that the peer reported having received, in this term:
	// the peer reset its failover timer no earlier than that tick.
	// Invariant on a primary: echo == 0 or primarySince <= echo <= now.
	echo int64
	// snapshotAgo counts ticks since this primary last told the peer that
	// it needs a snapshot (its next record is compacted here); -1: not
	// needed.
	snapshotAgo int
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

	// identity is this replica's data directory identity (IdentityKey).
	identity Identity
	// diskFull is set by the shell while its disk is nearly full: the node
	// takes no client records and appends nothing a primary sends, and does
	// not run for primary (SetDiskFull).
	diskFull bool

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
	// compactTo and compactBase: a compaction asked for (Compact), handed
	// out by the next Ready.
	compactTo   eventlog.Offset
	compactBase *isrView
	// snapshotFrom is the primary that told this backup it needs a
	// snapshot (None: none); the shell installs one, then restarts the node.
	snapshotFrom NodeID
	// snapshotAt is the primary's log start (minus one) that it gave: a
	// snapshot older than that does not help (Status.SnapshotAt).
	snapshotAt eventlog.Offset
	// votedFor is this incarnation's latest grant to a candidate whose log
	// this replica held (see votedLog.proves).
	votedFor votedLog
	msgs     []Message
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
	commit eventlog.Offset
	// stable is an offset known durable on every replica of the cluster
	// (not only the ISR): no side of any partition can truncate it. It only
	// grows. Reported in Ready.Stable.
	stable         eventlog.Offset
	reportedStable eventlog.Offset
	reportedCommit eventlog.Offset
	commitReported bool
	// verified is the backup's highest offset known to match the current
	// primary's log (in this epoch). Invariant: verified <= lv.last.
	verified eventlog.Offset
	matched  bool
	fetchAgo int
	// primaryStamp is the latest Stamp received from the primary this
	// backup follows, in this epoch; echoed back to it (Message.Echo).
	primaryStamp uint64

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
		// Stamps are ticks; 0 means "none" in a message, so time starts at 1.
		now: 1,
	}
	for _, p := range slices.Sorted(slices.Values(cfg.Peers)) {
		if p != cfg.ID {
			n.others = append(n.others, p)
			n.peers[p] = &peer{id: p, snapshotAgo: -1}
		}
	}
	id, err := readIdentity(log)
	if err != nil {
		return nil, err
	}
	if id.Replica != cfg.ID {
		return nil, fmt.Errorf("%w: the data directory belongs to replica %s, this is replica %s", ErrWrongIdentity, id.Replica, cfg.ID)
	}
	n.identity = id
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
	n.snapshotFrom = None
	if b, ok, err := log.Meta(ISRBaseKey); err != nil {
		return nil, fmt.Errorf("read isr base: %w", err)
	} else if ok {
		base, err := DecodeISRBase(b)
		if err != nil {
			return nil, err
		}
		v := base.view()
		n.lv.base = &v
	}
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
		"identity", n.identity.String(), "isr", n.isr().ids())
	if isr := n.isr(); len(isr.members) == 1 && n.isMe(isr.members[0], isr) {
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

// A node whose disk is full stays eligible (it may lead for reads if no
// member can write), but runs later than its timer says (resetFailoverTimeout)
// and hands the role to a member that can write (maybeHandOver).
//
// eligible reports whether this node may run for primary (all mode): not
// recovering, not told it is out, and a member of the newest ISR it knows
// in a way that proves it holds every committed record: either the
// membership predates its last restart (so commits waited for its acks ever
// since), or its own log holds an ISR record naming its current incarnation
// (it was caught up there, and has been a member continuously since: a
// removal would have needed its silence, which means a restart or a long
// pause and so a new incarnation, or its acknowledgment of MsgOut).
//
// Both proofs also need the member entry to name this data directory
// (isMe): a replica whose disk was replaced holds nothing its former self
// was trusted with, whatever the records it fetched say about that self.
func (n *Node) eligible() bool {
	if n.recovering || n.out || n.stopped != nil {
		return false
	}
	isr := n.isr()
	me, ok := isr.member(n.cfg.ID)
	if !ok || !n.isMe(me, isr) {
		return false
	}
	if me.Incarnation < n.incarnation {
		return true
	}
	if mine, ok := n.logISR.member(n.cfg.ID); ok && n.isMe(mine, n.logISR) && mine.Incarnation == n.incarnation {
		return true
	}
	return me.Incarnation == n.incarnation && n.votedFor.proves(isr, &n.lv)
}

// votedLog remembers the one vote of this incarnation that can stand in for
// holding an ISR record: the candidate's log ended at (lastEpoch, last) and
// this replica's log held that same prefix when it granted.
type votedLog struct {
	epoch     eventlog.Epoch
	lastEpoch eventlog.Epoch
	last      eventlog.Offset
}

// proves reports whether ISR v, which names this replica's current
// incarnation, is as good a proof as an ISR record in its own log: v was
// written in the epoch of that vote, so by the candidate it voted for, whose
// log when it won was the prefix this replica held (a candidate takes no
// records), and this replica's log still holds that prefix. Then every
// record committed before the epoch is here (the winner was eligible, so it
// held them all, and log matching), nothing of the epoch commits before
// every member of its first ISR, this replica among them, holds it, and a
// later ISR of the epoch re-adds a member only once its acknowledgements
// reach the commit, which the primary knows exactly for its own epoch. (A
// reported ISR of another epoch proves nothing: a new primary's commit can
// be behind the true one for records of earlier epochs, so a member it adds
// may lack some: simulator, snap seed 96, with the rule widened that far.)
// Without this proof, a backup whose only fellow member had its disk
// replaced before the ISR record reached it was never eligible again
// (simulator, partition seed 439; TestScenario_VoterLeadsWhenTheWinnerLosesItsDisk).
func (g votedLog) proves(v isrView, lv *logView) bool {
	return g.epoch != 0 && v.epoch == g.epoch && v.at >= g.last+2 &&
		lv.last >= g.last && lv.epochAt(g.last) == g.lastEpoch
}

// isMe reports whether member m of ISR v is this replica's data directory:
// same replica id and same identity. The initial ISR (no record yet: every
// log is empty, nothing is committed) names every replica, whatever its
// disk. A member named without a disk (a record written before identities
// existed) is this replica only if its identity was adopted from such a
// log (Identity.Legacy).
func (n *Node) isMe(m ISRMember, v isrView) bool {
	if m.ID != n.cfg.ID {
		return false
	}
	switch {
	case v.at == 0:
		return true
	case m.Disk == 0:
		return n.identity.Legacy
	}
	return m.Disk == n.identity.Disk
}

// sameDisk reports whether peer p, as last heard, is the data directory
// that ISR member m names. A peer not heard yet (disk 0), or a member named
// before identities existed, is given the benefit of the doubt: its own
// isMe check is what keeps a replaced disk from leading.
func sameDisk(m ISRMember, p *peer) bool {
	return m.Disk == 0 || p.disk == 0 || m.Disk == p.disk
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

// stop makes the node inoperable after a log read error. A stopped node is
// no longer primary (it cannot replicate a log it cannot read), and never
// becomes one: it answers nothing, so its peers soon treat it as crashed.
func (n *Node) stop(err error) {
	if n.stopped == nil {
		n.stopped = fmt.Errorf("%w: %w", ErrStopped, err)
		n.logger.Error("replica stopped", "err", err, "was", n.role)
		n.role, n.primary = RoleBackup, None
		n.ends = nil
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
	rd := Ready{Commit: n.commit, Stable: n.stable}
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
	if n.compactTo != 0 {
		rd.CompactTo = n.compactTo
		b := n.compactBase.base()
		rd.ISRBase = &b
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
	return rd, !rd.empty() || !n.commitReported || n.commit != n.reportedCommit || n.stable != n.reportedStable
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
	if rd.CompactTo != 0 && rd.CompactTo == n.compactTo {
		n.lv.base = n.compactBase
		n.compactTo, n.compactBase = 0, nil
	}
	if rd.ISRIndex != nil {
		n.isrSaved, n.isrSavedOK = *rd.ISRIndex, true
	}
	n.msgs = nil
	n.early = nil
	for _, p := range n.peers {
		p.lateAppend = false
	}
	n.reportedCommit, n.commitReported = rd.Commit, true
	n.reportedStable = rd.Stable
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
	if n.diskFull {
		return 0, ErrDiskFull
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
	in = in && n.isMe(me, n.logISR)
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
	if first := n.lv.log.First(); off+1 < first {
		n.stop(fmt.Errorf("%w: truncate after %d, but the log starts at %d", ErrForkTooDeep, off, first))
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
	wasRecovering := n.recovering
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
	// heard from again. That reasoning holds only for a node that was in
	// service when the pause began: one that was still recovering (it had
	// restarted and not yet heard from everyone) keeps the flags it had, or a
	// restarted replica that stalls would count peers it never heard from as
	// heard and lead alone without the records they hold.
	for _, p := range n.peers {
		if p.heardAgo >= n.cfg.FailoverTicks {
			if !wasRecovering {
				p.heard = true
			}
			continue
		}
		p.heard, p.heardAgo = false, 0
	}
	n.checkRecovered()
}

// Fail makes the node inoperable, as a failed read of its own log does:
// for the caller's own reads of the log (the shell's applier) that found a
// corrupt record. It steps down and never leads again; Status().Err says
// why.
func (n *Node) Fail(err error) {
	if n.readyOut {
		panic("replica: Fail called between Ready and Advance")
	}
	n.stop(err)
}

// Compact asks the node to discard the records up to upto, which a
// snapshot of the state machine covers (the caller keeps the snapshot): the
// next Ready carries CompactTo, with the ISR in effect at that point for the
// log's meta (ISRBase), found now while its records are still there. upto
// must be durable here. Compacting does not stop this replica from serving
// a backup whose next record is gone: it sends it a snapshot instead
// (MsgSnapshot). A compaction already asked for but not yet handed out is
// replaced.
func (n *Node) Compact(upto eventlog.Offset) error {
	if err := n.check(); err != nil {
		return err
	}
	if upto == 0 || upto < n.lv.log.First() {
		return nil
	}
	if upto > n.lv.stableLast || upto > n.durable {
		return fmt.Errorf("%w: compact to %d beyond the durable log end %d", ErrOutOfRange, upto, min(n.lv.stableLast, n.durable))
	}
	base, err := n.lv.isrUpTo(n.logISR, upto, n.cfg.Peers)
	if err != nil {
		n.stop(err)
		return n.stopped
	}
	n.compactTo, n.compactBase = upto, &base
	return nil
}

// ISRAt returns the ISR in effect after offset off (off in the log, at or
// above the compaction point): what a snapshot taken at off carries.
func (n *Node) ISRAt(off eventlog.Offset) (ISRBase, error) {
	if err := n.check(); err != nil {
		return ISRBase{}, err
	}
	if off > n.lv.last {
		return ISRBase{}, fmt.Errorf("%w: isr at %d beyond the log end %d", ErrOutOfRange, off, n.lv.last)
	}
	v, err := n.lv.isrUpTo(n.logISR, off, n.cfg.Peers)
	if err != nil {
		return ISRBase{}, err
	}
	return v.base(), nil
}

// EpochAt returns the epoch of the record at off (0 for off 0), off at most
// the log end, from the epoch history (compacted records included).
func (n *Node) EpochAt(off eventlog.Offset) eventlog.Epoch {
	if off > n.lv.last {
		return 0
	}
	return n.lv.epochAt(off)
}

// SetDiskFull tells the node whether its disk is nearly full (the shell
// watches the free space against a reserve, so that no write ever runs into
// a full disk: Badger writes through mmapped files, where that is a SIGBUS).
// While full, a primary refuses client proposals (ErrDiskFull: not taken)
// but keeps serving and writing its own small protocol records, and hands
// its role over if another ISR member can still write; a backup appends
// nothing (its primary removes it from the ISR); and the node does not run
// for primary. Everything resumes once the disk has room again: a backup
// catches up by offset and rejoins the ISR as after any lag.
func (n *Node) SetDiskFull(full bool) {
	if n.check() != nil || full == n.diskFull {
		return
	}
	n.diskFull = full
	if !full {
		n.logger.Info("disk has room again; taking writes")
		if n.role == RoleBackup {
			n.matched = false
			n.fetchAgo = n.cfg.HeartbeatTicks
		}
		return
	}
	n.logger.Warn("disk nearly full; not taking writes", "role", n.role)
	n.resetFailoverTimeout()
	n.maybeHandOver()
}

// maybeHandOver steps a primary whose disk is full down in favour of an
// ISR member that can still write, alive and caught up: the members elect
// among themselves once it stops heartbeating as primary (it is not eligible
// while full). Alone, or with no such member, it stays primary for reads.
func (n *Node) maybeHandOver() {
	if n.role != RolePrimary || !n.diskFull {
		return
	}
	for _, m := range n.logISR.members {
		p := n.peers[m.ID]
		if p == nil || m.ID == n.cfg.ID {
			continue
		}
		if !p.diskFull && !p.recovering && p.heardAgo < n.cfg.FailoverTicks && p.replicating && p.match >= n.commit {
			n.logger.Warn("disk nearly full; handing the primary role over", "to_candidates_like", p.id, "epoch", n.epoch)
			n.becomeBackup(None)
			return
		}
	}
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
	if n.diskFull {
		// A member that can still write should win the election: run only
		// if none did (then lead for reads, refusing writes).
		n.failoverTimeout += 2 * n.cfg.FailoverTicks
	}
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
	// NeedsSnapshot (primary only): its next record is compacted here.
	NeedsSnapshot bool
}

// UnwantedSnapshot says why a snapshot at off from peer from is not to be
// taken by the node whose status this is, holding its log's records first
// to last, or "" if it is. The shell checks it when an offer arrives and
// again right before the install (the simulator at delivery): a stream
// takes a while, and a backup may catch up by offset meanwhile (a newer
// primary holding what it lacks). Installing a snapshot not asked for
// would roll back records this replica holds (and may have acknowledged),
// and its ISR to the snapshot's, which may name it alone, without letting
// it catch up (simulator, snap-partition seed 267 at 2000 ticks: it led
// alone while the primary it had acknowledged held its lease).
func (s Status) UnwantedSnapshot(from NodeID, off, first, last eventlog.Offset) string {
	switch {
	case s.Role != RoleBackup || s.Primary != from:
		return fmt.Sprintf("replica %d is not this backup's primary", from)
	case off <= last && off+1 >= first:
		return "this replica already holds that far"
	case s.SnapshotFrom != from || off < s.SnapshotAt:
		// Not asked for (any more), or older than the primary's log
		// start. The primary offers again while the core still asks.
		return "not asked for"
	}
	return ""
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
	// Identity is this replica's data directory identity.
	Identity Identity
	// Stable is the offset known durable on every replica (Ready.Stable).
	Stable eventlog.Offset
	// SnapshotFrom is the primary that told this backup it needs a
	// snapshot (its next record is compacted there), None otherwise.
	SnapshotFrom NodeID
	// SnapshotAt is the offset before that primary's first retained record,
	// as it said: a snapshot that ends before it does not help.
	SnapshotAt eventlog.Offset
	// Now is the node's clock (ticks since it started). LeaseStamp, on a
	// primary that holds a read lease, is the tick from which the lease
	// runs: every other member of its ISR reset its failover timer at or
	// after that tick, so none of them can take over before LeaseStamp +
	// FailoverTicks of its own ticks. The lease is good until LeaseStamp +
	// LeaseTicks ticks, measured by the caller on a wall clock (a paused
	// process's ticks stop, a clock does not): see Config.LeaseTicks. 0
	// when there is no lease (not primary, or an ISR member never echoed).
	Now        int64
	LeaseStamp int64
	LeaseTicks int
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
		Identity: n.identity, Stable: n.stable, Now: n.now, LeaseStamp: n.leaseStamp(), LeaseTicks: n.cfg.LeaseTicks,
		SnapshotFrom: n.snapshotFrom,
		SnapshotAt:   n.snapshotAt,
	}
	if n.role == RolePrimary {
		s.ISR = n.logISR.ids()
	}
	for _, id := range n.others {
		p := n.peers[id]
		s.Peers = append(s.Peers, PeerStatus{ID: id, Match: p.match, InSync: slices.Contains(s.ISR, id),
			HeardAgoTicks: p.heardAgo, Recovering: p.recovering, NeedsSnapshot: n.role == RolePrimary && p.snapshotAgo >= 0})
	}
	return s
}

// leaseStamp returns the tick from which this primary's read lease runs
// (see Status.LeaseStamp), or 0 if it holds none. Every other member of the
// ISR in effect must have echoed a stamp of this term: a member that did
// reset its failover timer when that message arrived, and cannot run for
// primary before FailoverTicks of its ticks have passed since. A primary
// alone in its ISR holds the lease from now: no member can take over. (Under
// a partition a side that dropped the other from its ISR also holds one: all
// mode may fork there, which docs/replication.md states.)
func (n *Node) leaseStamp() int64 {
	if n.role != RolePrimary || n.stopped != nil {
		return 0
	}
	stamp := n.now
	for _, m := range n.logISR.members {
		if m.ID == n.cfg.ID {
			continue
		}
		p := n.peers[m.ID]
		if p == nil {
			continue
		}
		if p.echo == 0 {
			return 0
		}
		stamp = min(stamp, p.echo)
	}
	return stamp
}

// waiting explains why the node is neither primary nor following one.
func (n *Node) waiting() string {
	isr := n.isr()
	me, named := isr.member(n.cfg.ID)
	newDisk := named && !n.isMe(me, isr)
	switch {
	case n.stopped != nil:
		return "stopped: " + n.stopped.Error()
	case n.role == RolePrimary:
		return ""
	case n.role == RoleBackup && n.snapshotFrom != None:
		return fmt.Sprintf("installing a snapshot from primary %s: its log no longer holds the records this replica lacks", n.snapshotFrom)
	case n.role == RoleBackup && n.primary != None && newDisk:
		return fmt.Sprintf("new data directory (identity %s): catching up with primary %s to join the ISR", n.identity, n.primary)
	case n.role == RoleBackup && n.primary != None && n.recovering:
		return fmt.Sprintf("restarted; catching up with primary %s to rejoin the ISR", n.primary)
	case n.role == RoleBackup && n.primary != None:
		return ""
	case newDisk && !n.recovering:
		return fmt.Sprintf("new data directory (identity %s): the ISR %v names this replica's former disk; waiting for a primary to fetch the log from",
			n.identity, isr.ids())
	}
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
		return fmt.Sprintf("not in the latest ISR %v (this data directory is %s); waiting for a primary to fetch the log from",
			isr.ids(), n.identity)
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
	case !n.eligible() && !n.recovering:
		return fmt.Sprintf("the latest ISR %v (epoch %d) names this replica, but that record is not in its log: it cannot prove it holds "+
			"every committed record; waiting for a primary", isr.ids(), isr.epoch)
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
