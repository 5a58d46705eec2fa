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

	CrashProb, RestartProb float64
	// CrashMidReadyProb crashes a node part way through persisting a Ready.
	CrashMidReadyProb float64
	// PauseProb pauses a live node for a random time (short or long).
	PauseProb float64
	// MaxDown is the most nodes down (crashed or paused) at once.
	MaxDown int
	// ReadyDelayProb defers a node's Ready to the end of the tick.
	ReadyDelayProb float64

	Clients     int
	ProposeProb float64
	// RetryTicks is how long a client waits for an ack before retrying.
	RetryTicks int
	// TraceLines bounds the trace ring (default 3000).
	TraceLines int
}

// SimNode is one replica of the simulated cluster.
type SimNode struct {
	ID   replica.NodeID
	Node *replica.Node // nil while crashed
	Disk *eventlog.MemoryLog
	SM   *StateMachine
	// mirror of the disk: epoch and chained hash per offset (index off-1).
	epochs []eventlog.Epoch
	hashes []uint64

	pausedUntil int64
	pausedAt    int64
	readyDue    bool
	// lastCommit is the commit reported in this life (monotonic check).
	lastCommit  eventlog.Offset
	primaryOf   eventlog.Epoch
	everPrimary bool
}

// Down reports whether the node is crashed.
func (s *SimNode) Down() bool { return s.Node == nil }

type client struct {
	id      string
	seq     uint64
	pending bool
	sentAt  int64
	// accepted lists the nodes that accepted the pending request.
	accepted []replica.NodeID
}

// Cluster is a simulated cluster. Not safe for concurrent use.
type Cluster struct {
	opts    Options
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

	// issued holds every client request ever proposed, with its data.
	issued map[ClientSeq]string
	// Acked holds every client request acknowledged.
	Acked   map[ClientSeq]bool
	ackedBy map[ClientSeq]replica.NodeID
	// committed[i] is the digest of the record at offset i+1 known committed.
	committed []uint64
	// primaries maps an epoch to the node that was primary in it.
	primaries map[eventlog.Epoch]replica.NodeID
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
	c := &Cluster{
		opts:      opts,
		rng:       rand.New(rand.NewPCG(opts.Seed, 0x5eed)),
		issued:    map[ClientSeq]string{},
		Acked:     map[ClientSeq]bool{},
		ackedBy:   map[ClientSeq]replica.NodeID{},
		primaries: map[eventlog.Epoch]replica.NodeID{},
		trace:     make([]string, 0, opts.TraceLines),
		Faults:    true,
		Traffic:   true,
	}
	c.Net = NewNetwork(opts.Net, rand.New(rand.NewPCG(opts.Seed, 0x4e7)))
	for i := range opts.Nodes {
		c.Nodes = append(c.Nodes, &SimNode{ID: replica.NodeID(i), Disk: eventlog.NewMemoryLog(), SM: NewStateMachine()})
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

// Err returns the first invariant violation, if any.
func (c *Cluster) Err() error { return c.err }

func (c *Cluster) node(id replica.NodeID) *SimNode { return c.Nodes[id] }

// Crash drops a node and its un-persisted Ready; its disk keeps what was
// persisted.
func (c *Cluster) Crash(id replica.NodeID) {
	s := c.node(id)
	if s.Down() {
		return
	}
	c.Tracef("CRASH n%d", id)
	c.Stats.Crashes++
	s.Node, s.readyDue, s.pausedUntil = nil, false, 0
	s.SM = NewStateMachine()
	c.Net.DropTo(id)
	for _, cl := range c.clients {
		cl.accepted = slices.DeleteFunc(cl.accepted, func(n replica.NodeID) bool { return n == id })
	}
}

// Restart recreates a crashed node from its disk.
func (c *Cluster) Restart(id replica.NodeID) error {
	s := c.node(id)
	if !s.Down() {
		return nil
	}
	want, err := scanLatestISR(s.Disk)
	if err != nil {
		return c.fail("restart n%d: %v", id, err)
	}
	n, err := replica.NewNode(c.config(id), s.Disk)
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
	c.Tracef("RESTART n%d last=%d", id, s.Disk.Last())
	c.Stats.Restarts++
	return c.processReady(s)
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

func (c *Cluster) resume(s *SimNode) error {
	gap := int(c.Now - s.pausedAt)
	s.pausedUntil = 0
	c.Tracef("RESUME n%d after %d", s.ID, gap)
	s.Node.Paused(gap)
	return c.processReady(s)
}

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
		}
		if err := c.apply(s, rd); err != nil {
			return err
		}
		s.Node.Advance(rd)
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
	fmt.Fprintf(&b, " commit=%d | %s e%d last=%d isr=%v rec=%v", rd.Commit, st.Role, st.Epoch, st.LogEnd, st.ISR, st.Recovering)
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

// persist performs a Ready's writes in the documented order. With crash
// set it stops after a random number of them.
func (c *Cluster) persist(s *SimNode, rd replica.Ready, crash bool) error {
	type op func() error
	var ops []op
	if rd.HardState != nil {
		ops = append(ops, func() error {
			b, err := replica.EncodeHardState(*rd.HardState)
			if err != nil {
				return err
			}
			return s.Disk.SetMeta(replica.HardStateKey, b)
		})
	}
	if rd.Truncate {
		ops = append(ops, func() error {
			c.Tracef("n%d truncate after %d (last %d)", s.ID, rd.TruncateAfter, s.Disk.Last())
			c.Stats.Truncations++
			if err := s.Disk.Truncate(rd.TruncateAfter); err != nil {
				return err
			}
			s.epochs, s.hashes = s.epochs[:rd.TruncateAfter], s.hashes[:rd.TruncateAfter]
			return nil
		})
	}
	if rd.ISRIndex != nil {
		ops = append(ops, func() error {
			b, err := replica.EncodeISRIndex(*rd.ISRIndex)
			if err != nil {
				return err
			}
			return s.Disk.SetMeta(replica.ISRIndexKey, b)
		})
	}
	if len(rd.Records) > 0 {
		ops = append(ops, func() error {
			if err := s.Disk.Append(rd.Records); err != nil {
				return err
			}
			for _, r := range rd.Records {
				var prev uint64
				if k := len(s.hashes); k > 0 {
					prev = s.hashes[k-1]
				}
				s.epochs = append(s.epochs, r.Epoch)
				s.hashes = append(s.hashes, prev*1099511628211^recordDigest(r))
			}
			return nil
		})
	}
	for _, e := range rd.Epochs {
		ops = append(ops, func() error { return s.Disk.AddEpoch(e) })
	}
	if rd.DiscardRolledBack > 0 {
		ops = append(ops, func() error { return s.Disk.DiscardRolledBack(rd.DiscardRolledBack) })
	}
	limit := len(ops)
	if crash && limit > 0 {
		limit = c.rng.IntN(limit + 1)
	}
	for _, o := range ops[:limit] {
		if err := o(); err != nil {
			return c.fail("n%d: persisting its Ready: %v", s.ID, err)
		}
	}
	return nil
}

func recordDigest(r eventlog.Record) uint64 {
	h := uint64(14695981039346656037)
	for _, b := range fmt.Appendf(nil, "%d|%d|%s|%s|%d|%d|%s", r.Offset, r.Epoch, r.Type, r.ClientID, r.Seq, r.Time, r.Data) {
		h = (h ^ uint64(b)) * 1099511628211
	}
	return h
}

// apply feeds committed records to the node's state machine, checks them
// against the global committed prefix, and acknowledges clients.
func (c *Cluster) apply(s *SimNode, rd replica.Ready) error {
	if rd.Truncate && s.SM.Applied > rd.TruncateAfter {
		if !c.opts.Partitions {
			return c.fail("n%d truncated after %d below its applied offset %d", s.ID, rd.TruncateAfter, s.SM.Applied)
		}
		c.Tracef("n%d rebuilds its state (fork)", s.ID)
		s.SM = NewStateMachine()
	}
	if !c.opts.Partitions && rd.Commit < s.lastCommit {
		return c.fail("n%d commit went back from %d to %d", s.ID, s.lastCommit, rd.Commit)
	}
	s.lastCommit = rd.Commit
	for s.SM.Applied < rd.Commit {
		recs, err := s.Disk.Read(s.SM.Applied+1, 64<<10)
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
	if data, ok := c.issued[k]; !ok || data != string(r.Data) {
		return c.fail("n%d applied a phantom %v %q", s.ID, k, r.Data)
	}
	if fresh && s.SM.Gaps > 0 && !c.opts.Partitions {
		return c.fail("n%d applied %v out of per-client order", s.ID, k)
	}
	for _, cl := range c.clients {
		if cl.id == r.ClientID && cl.pending && cl.seq == r.Seq && slices.Contains(cl.accepted, s.ID) {
			c.Tracef("ACK %v by n%d at %d", k, s.ID, r.Offset)
			c.Acked[k] = true
			c.ackedBy[k] = s.ID
			cl.pending, cl.accepted = false, nil
		}
	}
	return nil
}

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
		return c.fail("n%d stopped: %v", s.ID, st.Err)
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
	recs, err := readAll(s.Disk, eventlog.Offset(n))
	if err != nil {
		return c.fail("n%d: %v", s.ID, err)
	}
	for i, r := range recs {
		if recordDigest(r) != c.committed[i] {
			return c.fail("new primary n%d lacks committed record %d", s.ID, i+1)
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
	for from := eventlog.Offset(1); from <= upto; {
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
		if err := s.Node.Step(m); err != nil {
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
		s.Node.Tick()
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
	return c.err
}

func (c *Cluster) readyOrDefer(s *SimNode) error {
	if c.Faults && c.rng.Float64() < c.opts.ReadyDelayProb {
		s.readyDue = s.Node.HasReady()
		return nil
	}
	return c.processReady(s)
}

func (c *Cluster) injectFaults() error {
	o := c.opts
	for _, s := range c.Nodes {
		switch {
		case s.Down():
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

// clientStep lets each client send a new request or retry its pending one.
func (c *Cluster) clientStep() error {
	for _, cl := range c.clients {
		switch {
		case !cl.pending && c.Traffic && c.rng.Float64() < c.opts.ProposeProb:
			cl.seq++
			cl.pending, cl.accepted = true, nil
			c.issued[ClientSeq{cl.id, cl.seq}] = fmt.Sprintf("%s-%d", cl.id, cl.seq)
			c.send(cl)
		case cl.pending && c.Now-cl.sentAt >= int64(c.opts.RetryTicks):
			c.send(cl)
		}
	}
	return nil
}

// send proposes a client's pending request to a random running node; a
// refusal is retried later (the client library follows hints the same way).
func (c *Cluster) send(cl *client) {
	cl.sentAt = c.Now
	ids := c.rng.Perm(len(c.Nodes))
	for _, i := range ids {
		s := c.Nodes[i]
		if s.Down() || s.paused(c.Now) {
			continue
		}
		_, err := c.Propose(s.ID, cl.id, cl.seq)
		if err == nil {
			cl.accepted = append(cl.accepted, s.ID)
			return
		}
	}
	// Nobody accepted: retry soon.
	cl.sentAt = c.Now - int64(c.opts.RetryTicks) + 5
}

// Propose proposes client request (clientID, seq) on node id.
func (c *Cluster) Propose(id replica.NodeID, clientID string, seq uint64) (eventlog.Offset, error) {
	s := c.node(id)
	if s.Down() {
		return 0, errors.New("node down")
	}
	k := ClientSeq{clientID, seq}
	data, ok := c.issued[k]
	if !ok {
		data = fmt.Sprintf("%s-%d", clientID, seq)
		c.issued[k] = data
	}
	off, err := s.Node.Propose([]eventlog.Record{{Type: "test.put", ClientID: clientID, Seq: seq, Time: c.Now, Data: []byte(data)}})
	if err != nil {
		return 0, err
	}
	c.Tracef("PROPOSE %v on n%d at %d", k, id, off)
	return off, c.readyOrDefer(s)
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

// HealAll turns faults off and brings every node back: the start of the
// liveness phase.
func (c *Cluster) HealAll() error {
	c.Faults = false
	c.Traffic = false
	c.Net.Heal()
	c.Net.Unblock()
	for _, s := range c.Nodes {
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
		if int(s.SM.Applied) != len(s.hashes) || s.SM.Digest != ref.SM.Digest {
			return false, fmt.Sprintf("n%d applied %d of %d", s.ID, s.SM.Applied, len(s.hashes))
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
// applied exactly once on every replica (invariants 1 and 2).
func (c *Cluster) CheckFinal() error {
	for k := range c.Acked {
		for _, s := range c.Nodes {
			if !s.SM.Seen[k] {
				return c.fail("acknowledged %v missing on n%d", k, s.ID)
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
			if _, ok := c.issued[ClientSeq{r.ClientID, r.Seq}]; !ok {
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
				cl.seq++
				cl.pending, cl.accepted = true, nil
				c.issued[ClientSeq{cl.id, cl.seq}] = fmt.Sprintf("%s-%d", cl.id, cl.seq)
				c.send(cl)
			}
		}
	}
	return c.fail("no convergence within %d ticks: %s", maxTicks, why)
}

// AckedCount is the number of acknowledged client requests.
func (c *Cluster) AckedCount() int { return len(c.Acked) }

// Submit makes client i send a new request (its next sequence) to whichever
// node accepts it; it retries like the random clients do.
func (c *Cluster) Submit(i int) ClientSeq {
	cl := c.clients[i]
	cl.seq++
	cl.pending, cl.accepted = true, nil
	k := ClientSeq{cl.id, cl.seq}
	c.issued[k] = fmt.Sprintf("%s-%d", cl.id, cl.seq)
	c.send(cl)
	return k
}

// Pending reports whether client i's last request awaits its ack.
func (c *Cluster) Pending(i int) bool { return c.clients[i].pending }

// Abandon makes client i give up its pending request (it stays issued, so
// if it lands later it is no phantom, but it is not acknowledged).
func (c *Cluster) Abandon(i int) { c.clients[i].pending, c.clients[i].accepted = false, nil }

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

// SubmitTo makes client i send a new request to node id only; it reports
// whether the node accepted it. The client keeps retrying on any node.
func (c *Cluster) SubmitTo(i int, id replica.NodeID) (ClientSeq, error) {
	cl := c.clients[i]
	cl.seq++
	cl.pending, cl.accepted = true, nil
	k := ClientSeq{cl.id, cl.seq}
	c.issued[k] = fmt.Sprintf("%s-%d", cl.id, cl.seq)
	cl.sentAt = c.Now
	if _, err := c.Propose(id, cl.id, cl.seq); err != nil {
		return k, err
	}
	cl.accepted = append(cl.accepted, id)
	return k, nil
}

// AckedBy reports whether client i's last request was acknowledged by node id.
func (c *Cluster) AckedBy(i int, id replica.NodeID) bool {
	cl := c.clients[i]
	by, ok := c.ackedBy[ClientSeq{cl.id, cl.seq}]
	return ok && by == id
}
