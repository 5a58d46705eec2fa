package replicatest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

// Options configure a Cluster. Probabilities are per tick.
type Options struct {
	Seed  uint64
	Nodes int
	// Config is the template for every node (ID, Peers and Seed are set by
	// the cluster).
	Config replica.Config
	Net    NetworkOptions
	// Partitions selects the second network model (partitions and long
	// silences): only invariants 1-3 and 9 are then checked, since all mode
	// may fork and relies on re-submission.
	Partitions bool
	// App is the application the replicas run (default Counter).
	App App

	CrashProb, RestartProb float64
	// CrashMidReadyProb crashes a node part way through persisting a Ready.
	CrashMidReadyProb float64
	// WipeProb replaces a crashed node's disk with an empty one (a disk
	// replaced, or a data directory wiped): it restarts with an empty log
	// and a new identity. Only while another node's disk holds every
	// committed record, since nothing can survive the loss of every copy.
	WipeProb float64
	// PauseProb pauses a live node for a random time (short or long).
	PauseProb float64
	// CorruptProb makes a record of a running node's log fail its checksum
	// from now on (bytes flipped on its disk): the node stops when it reads
	// it, is never primary again in that life, and is repaired RepairTicks
	// later as an operator would with --repair (its disk replaced: it
	// fetches everything as a new member). Only while the other disks hold
	// every acknowledged write.
	CorruptProb float64
	RepairTicks int
	// MaxDown is the most nodes down (crashed or paused) at once.
	MaxDown int
	// ReadyDelayProb defers a node's Ready to the end of the tick.
	ReadyDelayProb float64

	Clients     int
	ProposeProb float64
	// RetryTicks is how long a client waits for an ack before retrying.
	RetryTicks int
	// QueueProb is the chance that a request sent while a node is paused
	// waits in its socket for it (a stopped process's queue) instead of
	// going elsewhere; the node takes it when it resumes, before or after
	// it notices the pause (the shell's loop may see either first).
	QueueProb float64
	// AbandonProb is the chance that a client whose request every running
	// node refused (a definite "not applied") gives up on it, as a client
	// that trusts the answer would. Such a request must never be applied.
	AbandonProb float64
	// SnapshotEvery makes every node snapshot its state every that many
	// applied records (0: no snapshots; the App's state must be a
	// Snapshotter), compacting its log RetainEvents records behind the
	// latest and no further than ForkRetain allows (as shell.Config). A
	// snapshot's meta comes up to SnapshotDelayMax steps after its state
	// was taken; one sent to a backup arrives within InstallTicksMax steps,
	// damaged with DamageSnapshotProb (the receiver rejects it), and its
	// install crashes after a random step with InstallCrashProb.
	SnapshotEvery, RetainEvents, ForkRetain uint64
	SnapshotDelayMax, InstallTicksMax       int
	InstallCrashProb, DamageSnapshotProb    float64
	// TraceLines bounds the trace ring (default 3000).
	TraceLines int
}

// SimNode is one replica of the simulated cluster.
type SimNode struct {
	ID   replica.NodeID
	Node *replica.Node // nil while crashed
	Disk *eventlog.MemoryLog
	SM   AppState
	// mirror of the disk: epoch and chained hash per offset (index off-1).
	epochs []eventlog.Epoch
	hashes []uint64

	pausedUntil int64
	pausedAt    int64
	readyDue    bool
	// queued holds requests that arrived while the node was paused.
	queued []ClientSeq
	// lastCommit is the commit reported in this life (monotonic check).
	lastCommit  eventlog.Offset
	primaryOf   eventlog.Epoch
	everPrimary bool
	// now counts the node's ticks in this life as its core does (from 1);
	// tickAt[k] is the cluster time at which it took its tick k: the wall
	// clock its lease is measured on, as the shell does.
	now    int64
	tickAt map[int64]int64
	// lastSeq is the highest sequence this node's state applied per
	// client in this life (per-client order, invariant 8).
	lastSeq map[string]uint64
	// wiped is true from a Wipe until the node is back in an ISR.
	wiped bool
	// corrupt holds the offsets whose records fail their checksum on this
	// disk; failedAt is when the node stopped on one (0: it did not).
	corrupt  map[eventlog.Offset]bool
	failedAt int64

	// shadow is the disk's whole history, compacted records included (a
	// truncation replaces it, never shortens it in place: snapshots share
	// its prefixes).
	shadow []eventlog.Record
	// snaps are the durable snapshots (offset order); installing the one
	// being installed (the durable install marker). pendingSnap, forks,
	// lastTaken, compacted and stable are the shell's in-memory view.
	snaps       []*simSnapshot
	installing  *simSnapshot
	pendingSnap *pendingSnapshot
	forks       uint64
	lastTaken   eventlog.Offset
	compacted   eventlog.Offset
	stable      eventlog.Offset
	// safeDurable is the shell's persisted safe offset (safeKey).
	safeDurable eventlog.Offset
	// failNext fails the node once the Ready being processed is advanced.
	failNext error
}

// simDisk is a node's disk as its core reads it: its MemoryLog, with the
// records marked corrupt failing their checksum.
type simDisk struct {
	*eventlog.MemoryLog
	s *SimNode
}

func (d simDisk) Read(from eventlog.Offset, maxBytes int) ([]eventlog.Record, error) {
	recs, err := d.MemoryLog.Read(from, maxBytes)
	for i, r := range recs {
		if d.s.corrupt[r.Offset] {
			if i > 0 {
				return recs[:i], nil // what a reader gets before the bad block
			}
			return nil, &eventlog.CorruptError{Offset: r.Offset, Reason: "checksum mismatch (simulated)"}
		}
	}
	return recs, err
}

// Down reports whether the node is crashed.
func (s *SimNode) Down() bool { return s.Node == nil }

// Cluster is a simulated cluster. Not safe for concurrent use.
type Cluster struct {
	opts    Options
	app     App
	rng     *rand.Rand
	Now     int64
	Nodes   []*SimNode
	Net     *Network
	clients []*client
	// Faults enables random faults and client traffic; scripted tests turn
	// it off and drive the cluster by hand.
	Faults bool
	// Traffic enables random client proposals (new requests).
	Traffic bool
	// Verbose traces every message sent.
	Verbose bool

	// issued holds every client request ever proposed.
	issued map[ClientSeq]bool
	// Acked holds every client request acknowledged, with the result its
	// client was told.
	Acked   map[ClientSeq]string
	ackedBy map[ClientSeq]replica.NodeID
	// refused holds requests their client gave up on after every node
	// refused them (definite errors): none may ever be applied.
	refused map[ClientSeq]bool
	// committed[i] is the digest of the record at offset i+1 known committed.
	committed []uint64
	// committedChain[i] chains committed[:i+1] (holdsCommitted); extended
	// lazily, as committed only grows.
	committedChain []uint64
	// primaries maps an epoch to the node that was primary in it.
	primaries map[eventlog.Epoch]replica.NodeID
	// transfers are the snapshots on their way to backups.
	transfers []transfer
	trace     []string
	traceNext int
	err       error
	// Stats counts what happened, to show the faults did bite.
	Stats Stats
}

// Stats counts events of a run.
type Stats struct {
	Crashes, Restarts, Pauses, Primaries, Truncations, Partitions int
	// EarlyCrashes counts crashes while persisting a Ready whose
	// EarlyMessages had already left: sent, never made durable here.
	EarlyCrashes int
	// Wipes counts disks replaced; Queued, requests taken by a node after a
	// pause; Refused, requests abandoned after definite refusals.
	Wipes, Queued, Refused int
	// Rollbacks counts states rolled back by their undo history after a
	// fork; Rebuilds, states rebuilt from the log instead.
	Rollbacks, Rebuilds int
	// Corruptions counts records made to fail their checksum; Failed,
	// nodes that stopped on one; TornAppends, crashes that left a prefix
	// of an append on the disk (the unsynced tail lost).
	Corruptions, Failed, TornAppends int
	// LeaseChecks counts steps at which a primary held its read lease and
	// the lease invariant was checked.
	LeaseChecks int
	// Reevaluated counts acknowledged requests whose result changed when
	// a re-submission after a fork was applied again (Reevaluator), found
	// by CheckFinal.
	Reevaluated int
	// Snapshots counts snapshots made durable; SnapshotsRefused, those
	// refused because the log moved under them; SnapshotsDropped, those a
	// fork's truncation discarded; SnapshotsRejected, damaged ones a
	// backup refused; Installs, installs completed (InstallCrashes, crashes
	// in the middle of one); Compactions, compactions persisted;
	// SnapshotChecks, restores checked against a replay from zero
	// (invariant 9); ForkTooDeep, nodes stopped by a fork below their
	// compacted log; KeptOnInstall, records an install moved to the
	// rollback area for re-submission.
	KeptOnInstall                                                      int
	Snapshots, SnapshotsRefused, SnapshotsDropped, SnapshotsRejected   int
	Installs, InstallCrashes, Compactions, SnapshotChecks, ForkTooDeep int
	// LivenessTicksMax is the longest liveness phase (ticks to converge).
	LivenessTicksMax int
}

// Add adds o to s.
func (s *Stats) Add(o Stats) {
	s.Crashes += o.Crashes
	s.Restarts += o.Restarts
	s.Pauses += o.Pauses
	s.Primaries += o.Primaries
	s.Truncations += o.Truncations
	s.Partitions += o.Partitions
	s.EarlyCrashes += o.EarlyCrashes
	s.Wipes += o.Wipes
	s.Queued += o.Queued
	s.Refused += o.Refused
	s.Rollbacks += o.Rollbacks
	s.Rebuilds += o.Rebuilds
	s.Corruptions += o.Corruptions
	s.Failed += o.Failed
	s.TornAppends += o.TornAppends
	s.LeaseChecks += o.LeaseChecks
	s.Snapshots += o.Snapshots
	s.SnapshotsRefused += o.SnapshotsRefused
	s.SnapshotsDropped += o.SnapshotsDropped
	s.SnapshotsRejected += o.SnapshotsRejected
	s.Installs += o.Installs
	s.InstallCrashes += o.InstallCrashes
	s.Compactions += o.Compactions
	s.SnapshotChecks += o.SnapshotChecks
	s.ForkTooDeep += o.ForkTooDeep
	s.KeptOnInstall += o.KeptOnInstall
	s.Reevaluated += o.Reevaluated
	s.LivenessTicksMax = max(s.LivenessTicksMax, o.LivenessTicksMax)
}

// NewCluster builds a cluster of fresh nodes with empty disks.
func NewCluster(opts Options) (*Cluster, error) {
	if opts.TraceLines == 0 {
		opts.TraceLines = 3000
	}
	if opts.RetryTicks == 0 {
		opts.RetryTicks = 60
	}
	if opts.App == nil {
		opts.App = Counter{}
	}
	c := &Cluster{
		opts:      opts,
		app:       opts.App,
		rng:       rand.New(rand.NewPCG(opts.Seed, 0x5eed)),
		issued:    map[ClientSeq]bool{},
		Acked:     map[ClientSeq]string{},
		ackedBy:   map[ClientSeq]replica.NodeID{},
		refused:   map[ClientSeq]bool{},
		primaries: map[eventlog.Epoch]replica.NodeID{},
		trace:     make([]string, 0, opts.TraceLines),
		Faults:    true,
		Traffic:   true,
	}
	c.Net = NewNetwork(opts.Net, rand.New(rand.NewPCG(opts.Seed, 0x4e7)))
	for i := range opts.Nodes {
		c.Nodes = append(c.Nodes, &SimNode{ID: replica.NodeID(i), Disk: eventlog.NewMemoryLog(), SM: c.app.NewState()})
	}
	for i := range opts.Clients {
		c.clients = append(c.clients, &client{id: fmt.Sprintf("c%d", i)})
	}
	for _, s := range c.Nodes {
		if err := c.Restart(s.ID); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) config(id replica.NodeID) replica.Config {
	cfg := c.opts.Config
	cfg.ID = id
	cfg.Peers = nil
	for _, s := range c.Nodes {
		cfg.Peers = append(cfg.Peers, s.ID)
	}
	cfg.Seed = c.opts.Seed ^ uint64(c.Now)<<20
	return cfg
}

// Tracef adds a line to the trace ring.
func (c *Cluster) Tracef(format string, args ...any) {
	line := fmt.Sprintf("t=%d ", c.Now) + fmt.Sprintf(format, args...)
	if len(c.trace) < c.opts.TraceLines {
		c.trace = append(c.trace, line)
		return
	}
	c.trace[c.traceNext] = line
	c.traceNext = (c.traceNext + 1) % len(c.trace)
}

// Trace returns the trace ring, oldest first.
func (c *Cluster) Trace() string {
	var b strings.Builder
	for i := range c.trace {
		b.WriteString(c.trace[(c.traceNext+i)%len(c.trace)])
		b.WriteByte('\n')
	}
	return b.String()
}

func (c *Cluster) fail(format string, args ...any) error {
	if c.err == nil {
		c.err = fmt.Errorf("t=%d: %s", c.Now, fmt.Sprintf(format, args...))
		c.Tracef("FAIL %v", c.err)
	}
	return c.err
}

// Reseed replaces the cluster's source of faults and choices (scripted
// tests run one script under several seeds).
func (c *Cluster) Reseed(seed uint64) { c.rng = rand.New(rand.NewPCG(seed, 0x5eed)) }

// Err returns the first invariant violation, if any.
func (c *Cluster) Err() error { return c.err }

func (c *Cluster) node(id replica.NodeID) *SimNode { return c.Nodes[id] }

func (s *SimNode) paused(now int64) bool { return s.pausedUntil > now }

// Up reports whether a node is running (not crashed, not paused).
func (c *Cluster) Up(id replica.NodeID) bool {
	s := c.node(id)
	return !s.Down() && !s.paused(c.Now)
}

// processReady persists, sends, applies and advances, as a shell would,
// then runs the checkers.
func (c *Cluster) processReady(s *SimNode) error {
	for s.Node != nil {
		rd, ok := s.Node.Ready()
		if !ok {
			break
		}
		s.readyDue = false
		c.traceReady(s, rd)
		// Early messages leave first, as a shell sends them: a crash while
		// persisting (below) is then a crash after sending but before the
		// writes they precede were durable.
		for _, m := range rd.EarlyMessages {
			c.Net.Send(c.Now, m)
		}
		if rd.Truncate {
			// Before the log changes, as the shell does.
			c.dropSnapshotsAbove(s, rd.TruncateAfter)
		}
		midCrash := c.Faults && c.rng.Float64() < c.opts.CrashMidReadyProb && c.downCount() < c.opts.MaxDown
		if err := c.persist(s, rd, midCrash); err != nil {
			return err
		}
		if midCrash {
			c.Tracef("n%d crashed while persisting a Ready", s.ID)
			if len(rd.EarlyMessages) > 0 {
				c.Stats.EarlyCrashes++
			}
			c.Crash(s.ID)
			return nil
		}
		for _, m := range rd.Messages {
			c.Net.Send(c.Now, m)
			if m.Type == replica.MsgSnapshot {
				c.offerSnapshot(s, m.To)
			}
		}
		if err := c.apply(s, rd); err != nil {
			return err
		}
		if s.Down() {
			return nil // its applier met a corrupt record: the process exited
		}
		s.Node.Advance(rd)
		if err := s.failNext; err != nil {
			s.failNext = nil
			s.Node.Fail(err)
		}
	}
	return c.check(s)
}

func (c *Cluster) traceReady(s *SimNode, rd replica.Ready) {
	var b strings.Builder
	fmt.Fprintf(&b, "n%d ready", s.ID)
	if rd.HardState != nil {
		fmt.Fprintf(&b, " hard=%+v", *rd.HardState)
	}
	if rd.Truncate {
		fmt.Fprintf(&b, " truncate>%d", rd.TruncateAfter)
	}
	if k := len(rd.Records); k > 0 {
		fmt.Fprintf(&b, " append=%d..%d", rd.Records[0].Offset, rd.Records[k-1].Offset)
		for _, r := range rd.Records {
			if strings.HasPrefix(r.Type, "replica.") {
				fmt.Fprintf(&b, " [%d %s e%d]", r.Offset, r.Type, r.Epoch)
			}
		}
	}
	if len(rd.Epochs) > 0 {
		fmt.Fprintf(&b, " epochs=%v", rd.Epochs)
	}
	if rd.DiscardRolledBack > 0 {
		fmt.Fprintf(&b, " discard=%d", rd.DiscardRolledBack)
	}
	st := s.Node.Status()
	fmt.Fprintf(&b, " commit=%d stable=%d | %s e%d last=%d isr=%v rec=%v", rd.Commit, rd.Stable, st.Role, st.Epoch, st.LogEnd, st.ISR, st.Recovering)
	c.Tracef("%s", b.String())
	if c.Verbose {
		for _, m := range rd.EarlyMessages {
			c.Tracef("  send early %v", m)
		}
		for _, m := range rd.Messages {
			c.Tracef("  send %v", m)
		}
	}
}

// persist performs a Ready's writes through replica.PersistSteps, the
// executor the shell uses, on a disk that also keeps the node's mirror.
// With crash set it stops after a random number of steps, and may keep only
// a prefix of the records it was appending (what a crash in the middle of
// an append leaves: the writes not yet synced are lost).
func (c *Cluster) persist(s *SimNode, rd replica.Ready, crash bool) error {
	b, err := rd.Batch()
	if err != nil {
		return c.fail("n%d: %v", s.ID, err)
	}
	disk := mirrorDisk{c: c, s: s}
	limit := -1
	all, _ := replica.PersistSteps(countingStorage{}, b, 0)
	if crash {
		limit = c.rng.IntN(all + 2) // the compaction is one more step
		if len(b.Records) > 1 && c.rng.IntN(2) == 0 {
			keep := 1 + c.rng.IntN(len(b.Records)-1)
			c.Stats.TornAppends++
			c.Tracef("n%d keeps %d of %d appended records", s.ID, keep, len(b.Records))
			b.Records = b.Records[:keep]
			// The crash came during the records: the steps after them
			// (epoch entries, the discard, the compaction) never ran.
			b.Epochs, b.DiscardRolledBack = nil, 0
			all, _ = replica.PersistSteps(countingStorage{}, b, 0)
			limit = min(limit, all)
		}
	}
	if _, err := replica.PersistSteps(disk, b, limit); err != nil {
		return c.fail("n%d: persisting its Ready: %v", s.ID, err)
	}
	if rd.CompactTo > 0 && (limit < 0 || limit > all) {
		if err := s.Disk.Compact(rd.CompactTo); err != nil {
			return c.fail("n%d: compact to %d: %v", s.ID, rd.CompactTo, err)
		}
		c.Stats.Compactions++
		c.Tracef("n%d compacted its log up to %d", s.ID, rd.CompactTo)
	}
	return nil
}

// mirrorDisk is a node's MemoryLog as replica.PersistSteps writes it, also
// keeping the mirror (epoch and chained hash per offset) the checkers use.
type mirrorDisk struct {
	c *Cluster
	s *SimNode
}

func (d mirrorDisk) SetMeta(name string, value []byte) error { return d.s.Disk.SetMeta(name, value) }
func (d mirrorDisk) AddEpoch(e eventlog.EpochStart) error    { return d.s.Disk.AddEpoch(e) }
func (d mirrorDisk) DiscardRolledBack(n int) error           { return d.s.Disk.DiscardRolledBack(n) }

func (d mirrorDisk) Truncate(after eventlog.Offset) error {
	s := d.s
	d.c.Tracef("n%d truncate after %d (last %d)", s.ID, after, s.Disk.Last())
	d.c.Stats.Truncations++
	if err := s.Disk.Truncate(after); err != nil {
		return err
	}
	s.epochs, s.hashes = s.epochs[:after], s.hashes[:after]
	s.shadow = slices.Clone(s.shadow[:after])
	return nil
}

func (d mirrorDisk) Append(recs []eventlog.Record) error {
	s := d.s
	if err := s.Disk.Append(recs); err != nil {
		return err
	}
	s.shadow = append(s.shadow, recs...)
	for _, r := range recs {
		var prev uint64
		if k := len(s.hashes); k > 0 {
			prev = s.hashes[k-1]
		}
		s.epochs = append(s.epochs, r.Epoch)
		s.hashes = append(s.hashes, prev*1099511628211^recordDigest(r))
	}
	return nil
}

// countingStorage writes nothing: PersistSteps on it with n = 0 counts a
// batch's steps.
type countingStorage struct{}

func (countingStorage) SetMeta(string, []byte) error       { return nil }
func (countingStorage) Truncate(eventlog.Offset) error     { return nil }
func (countingStorage) Append([]eventlog.Record) error     { return nil }
func (countingStorage) AddEpoch(eventlog.EpochStart) error { return nil }
func (countingStorage) DiscardRolledBack(int) error        { return nil }

func recordDigest(r eventlog.Record) uint64 {
	h := uint64(14695981039346656037)
	for _, b := range fmt.Appendf(nil, "%d|%d|%s|%s|%d|%d|%s|%d|%d", r.Offset, r.Epoch, r.Type, r.ClientID, r.Seq, r.Time, r.Data,
		r.OrigEpoch, r.OrigOffset) {
		h = (h ^ uint64(b)) * 1099511628211
	}
	return h
}

// apply feeds committed records to the node's state machine, as the shell's
// applier does (a fork rolls the state back, or rebuilds it), checks them
// against the global committed prefix, and acknowledges clients.
func (c *Cluster) apply(s *SimNode, rd replica.Ready) error {
	s.stable = rd.Stable
	if rb, ok := s.SM.(Rollbacker); ok {
		rb.SetStable(c.safeFromForks(s))
	}
	if rd.Truncate && s.SM.Applied() > rd.TruncateAfter {
		if !c.opts.Partitions {
			return c.fail("n%d truncated after %d below its applied offset %d", s.ID, rd.TruncateAfter, s.SM.Applied())
		}
		if err := c.rollback(s, rd.TruncateAfter); err != nil {
			return err
		}
		if s.failNext != nil {
			return nil
		}
	}
	if !c.opts.Partitions && rd.Commit < s.lastCommit {
		return c.fail("n%d commit went back from %d to %d", s.ID, s.lastCommit, rd.Commit)
	}
	s.lastCommit = rd.Commit
	for s.SM.Applied() < rd.Commit {
		recs, err := (simDisk{s.Disk, s}).Read(s.SM.Applied()+1, 64<<10)
		if errors.Is(err, eventlog.ErrCorrupt) {
			// The shell's applier stops the replica on a corrupt record:
			// the process exits, and the operator repairs it.
			c.Tracef("n%d cannot apply: %v", s.ID, err)
			c.Crash(s.ID)
			s.failedAt = c.Now
			c.Stats.Failed++
			return nil
		}
		if err != nil {
			return c.fail("n%d read to apply: %v", s.ID, err)
		}
		for _, r := range recs {
			if r.Offset > rd.Commit {
				break
			}
			if err := c.applyOne(s, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// rollback brings a node's state back to at most offset after (a fork):
// by its undo history if it has one, else by starting over.
func (c *Cluster) rollback(s *SimNode, after eventlog.Offset) error {
	if rb, ok := s.SM.(Rollbacker); ok {
		off, err := rb.RollbackTo(after)
		if err == nil {
			if off > after {
				return c.fail("n%d rolled back to %d, asked for at most %d", s.ID, off, after)
			}
			c.Tracef("n%d rolls its state back to %d (fork)", s.ID, off)
			c.Stats.Rollbacks++
			s.lastSeq = nil
			return nil
		}
		c.Tracef("n%d cannot roll back to %d (%v): rebuilds", s.ID, after, err)
	}
	c.Tracef("n%d rebuilds its state (fork)", s.ID)
	c.Stats.Rebuilds++
	sm, ok, err := c.rebuildState(s, after, "fork")
	if err != nil {
		return err
	}
	if !ok {
		// The shell's applier fails with replica.ErrForkTooDeep: the node
		// stops serving and leading until it is repaired.
		c.Stats.ForkTooDeep++
		c.Tracef("n%d cannot rebuild its state back to %d: its log starts at %d", s.ID, after, s.Disk.First())
		// (After this Ready's Advance: the applier fails asynchronously.)
		s.failNext = fmt.Errorf("%w: the state must go back to %d, the log starts at %d", replica.ErrForkTooDeep, after, s.Disk.First())
		s.failedAt = c.Now
		return nil
	}
	s.SM = sm
	s.lastSeq = nil
	return nil
}

func (c *Cluster) applyOne(s *SimNode, r eventlog.Record) error {
	if i := int(r.Offset) - 1; i < len(c.committed) {
		if d := recordDigest(r); d != c.committed[i] && !c.opts.Partitions {
			return c.fail("n%d committed offset %d (epoch %d) differs from the cluster's committed record", s.ID, r.Offset, r.Epoch)
		}
	} else if i == len(c.committed) {
		c.committed = append(c.committed, recordDigest(r))
	}
	fresh, err := s.SM.Apply(r)
	if err != nil {
		return c.fail("n%d: %v", s.ID, err)
	}
	if r.ClientID == "" || strings.HasPrefix(r.Type, "replica.") {
		return nil
	}
	k := ClientSeq{r.ClientID, r.Seq}
	if !c.issued[k] {
		return c.fail("n%d applied a phantom %v %q", s.ID, k, r.Data)
	}
	if fresh && c.refused[k] {
		return c.fail("n%d applied %v, which every replica had refused (a definite error) and its client gave up", s.ID, k)
	}
	if fresh {
		if s.lastSeq == nil {
			s.lastSeq = map[string]uint64{}
		}
		if r.Seq < s.lastSeq[r.ClientID] && !c.opts.Partitions {
			return c.fail("n%d applied %v after seq %d of the same client (per-client order)", s.ID, k, s.lastSeq[r.ClientID])
		}
		s.lastSeq[r.ClientID] = max(s.lastSeq[r.ClientID], r.Seq)
	}
	for _, cl := range c.clients {
		if cl.id == r.ClientID && cl.pending && cl.seq == r.Seq && containsNode(cl.accepted, s.ID) {
			res, ok := s.SM.Result(r.ClientID, r.Seq)
			if !ok {
				return c.fail("n%d applied %v (fresh=%v) but its state has no result for it", s.ID, k, fresh)
			}
			c.Tracef("ACK %v by n%d at %d: %s", k, s.ID, r.Offset, res)
			c.Acked[k] = res
			c.ackedBy[k] = s.ID
			cl.pending, cl.accepted = false, nil
		}
	}
	return nil
}

func containsNode(ids []replica.NodeID, id replica.NodeID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func (c *Cluster) downCount() int {
	k := 0
	for _, s := range c.Nodes {
		if s.Down() || s.paused(c.Now) {
			k++
		}
	}
	return k
}

// Step advances virtual time by one tick: random faults and client traffic
// (when enabled), message deliveries, a tick of every running node, and the
// Readies, with the checkers after each.
func (c *Cluster) Step() error {
	if c.err != nil {
		return c.err
	}
	c.Now++
	for _, s := range c.Nodes {
		if !s.Down() && s.pausedUntil != 0 && s.pausedUntil <= c.Now {
			if err := c.resume(s); err != nil {
				return err
			}
		}
	}
	if c.Faults {
		if err := c.injectFaults(); err != nil {
			return err
		}
	}
	if err := c.clientStep(); err != nil {
		return err
	}
	for {
		m, ok := c.Net.Next(c.Now)
		if !ok {
			break
		}
		s := c.node(m.To)
		if s.Down() {
			continue
		}
		if s.paused(c.Now) {
			c.Net.Defer(s.pausedUntil, m)
			continue
		}
		if err := s.Node.Step(m); err != nil && !(errors.Is(err, replica.ErrStopped) && len(s.corrupt) > 0) {
			return c.fail("n%d step %v: %v", s.ID, m, err)
		}
		if err := c.readyOrDefer(s); err != nil {
			return err
		}
	}
	for _, s := range c.Nodes {
		if s.Down() || s.paused(c.Now) {
			continue
		}
		if s.readyDue {
			if err := c.processReady(s); err != nil {
				return err
			}
		}
		if s.Node == nil {
			continue
		}
		c.tick(s)
		if err := c.readyOrDefer(s); err != nil {
			return err
		}
	}
	for _, s := range c.Nodes {
		if !s.Down() && !s.paused(c.Now) && s.readyDue {
			if err := c.processReady(s); err != nil {
				return err
			}
		}
	}
	if c.snapshotsOn() {
		if err := c.deliverSnapshots(); err != nil {
			return err
		}
		for _, s := range c.Nodes {
			if err := c.snapshotStep(s); err != nil {
				return err
			}
		}
	}
	if err := c.checkLeases(); err != nil {
		return err
	}
	return c.err
}

// tick gives node s one tick, noting when (its lease's wall clock).
func (c *Cluster) tick(s *SimNode) {
	s.Node.Tick()
	s.now++
	s.tickAt[s.now] = c.Now
	delete(s.tickAt, s.now-4096)
}

func (c *Cluster) readyOrDefer(s *SimNode) error {
	if c.Faults && c.rng.Float64() < c.opts.ReadyDelayProb {
		s.readyDue = s.Node.HasReady()
		return nil
	}
	return c.processReady(s)
}

// Status returns node id's status (zero Status if it is down).
func (c *Cluster) Status(id replica.NodeID) replica.Status {
	s := c.node(id)
	if s.Down() {
		return replica.Status{ID: id, Role: replica.RoleBackup, Primary: replica.None}
	}
	return s.Node.Status()
}

// Primary returns the running node that is primary with the highest epoch.
func (c *Cluster) Primary() (replica.NodeID, bool) {
	best, found := replica.None, false
	var epoch eventlog.Epoch
	for _, s := range c.Nodes {
		if !c.Up(s.ID) {
			continue
		}
		if st := s.Node.Status(); st.Role == replica.RolePrimary && (!found || st.Epoch > epoch) {
			best, epoch, found = s.ID, st.Epoch, true
		}
	}
	return best, found
}

// ForceLead calls ForceLead on node id and processes its Ready.
func (c *Cluster) ForceLead(id replica.NodeID) error {
	s := c.node(id)
	if s.Down() {
		return fmt.Errorf("n%d is down", id)
	}
	if err := s.Node.ForceLead(); err != nil {
		return err
	}
	c.Tracef("FORCE n%d", id)
	return c.processReady(s)
}
