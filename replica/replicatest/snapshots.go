package replicatest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
)

// The snapshot model: what replica/shell does with snapshots (snapshot.go
// there), at the simulator's steps and under its faults. Each node, on its
// own, writes a snapshot of its state every SnapshotEvery applied records:
// the state's bytes are taken at one step (a read view) and the meta (epoch,
// epoch history, ISR at that offset) a random number of steps later, as the
// shell's writer asks its loop, refused if a truncation or rollback came in
// between. A snapshot is durable once complete, and compaction then
// discards the log up to RetainEvents records before the latest, never past
// the base (the newest snapshot beyond any fork's reach, ForkRetain). A
// backup whose next record its primary compacted (MsgSnapshot) is sent the
// primary's base, which arrives some steps later unless the link breaks or
// the receiver crashes, and installs it: the state restored, the log's
// records the snapshot does not hold kept for re-submission, the log begun
// after it, a new core; a crash can stop an install after any of its steps,
// and the next start finishes it.
//
// A crash loses the node's state (it is rebuilt from its latest snapshot
// and the log), and a fork that the state cannot roll back restores it from
// the newest snapshot the log can be replayed after. Every restore checks
// invariant 9: the state restored from a snapshot equals a replay from zero
// of the records it covers (the node's history, kept whole in its shadow,
// compacted records included).

// Snapshotter is an optional capability of an AppState, needed for
// snapshots (Options.SnapshotEvery): as shell.Snapshotter.
type Snapshotter interface {
	// WriteSnapshot writes the whole state to w and returns the offset it
	// covers (its Applied).
	WriteSnapshot(w io.Writer) (eventlog.Offset, error)
	// RestoreSnapshot replaces the state with one WriteSnapshot wrote and
	// returns the offset it covers.
	RestoreSnapshot(r io.Reader) (eventlog.Offset, error)
}

// simSnapshot is a durable snapshot on a node's disk.
type simSnapshot struct {
	Offset eventlog.Offset
	Epoch  eventlog.Epoch
	Epochs []eventlog.EpochStart
	ISR    replica.ISRBase
	data   []byte
	// hist is the history the state covers (the taker's shadow up to
	// Offset), for invariant 9 and for the receiver's shadow.
	hist []eventlog.Record
}

// pendingSnapshot is a snapshot being written: its state taken, its meta
// not yet asked for. Lost in a crash.
type pendingSnapshot struct {
	offset eventlog.Offset
	data   []byte
	hist   []eventlog.Record
	forks  uint64
	due    int64
}

// transfer is a snapshot on its way from a primary to a backup.
type transfer struct {
	from, to replica.NodeID
	snap     *simSnapshot
	due      int64
	damaged  bool
}

// snapshotsOn reports whether the run takes snapshots.
func (c *Cluster) snapshotsOn() bool { return c.opts.SnapshotEvery > 0 }

// safeFromForks is the shell's safeFromForks: the offset durable on every
// replica, the end of the compacted log, or ForkRetain records behind the
// applied offset, whichever is latest.
func (c *Cluster) safeFromForks(s *SimNode) eventlog.Offset {
	safe := max(s.stable, s.Disk.First()-1, s.safeDurable)
	if f := eventlog.Offset(c.opts.ForkRetain); f > 0 && s.SM.Applied() > f {
		safe = max(safe, s.SM.Applied()-f)
	}
	return safe
}

func (s *SimNode) latestSnapshot() *simSnapshot {
	if len(s.snaps) == 0 {
		return nil
	}
	return s.snaps[len(s.snaps)-1]
}

func (s *SimNode) baseSnapshot(safe eventlog.Offset) *simSnapshot {
	for i := len(s.snaps) - 1; i >= 0; i-- {
		if s.snaps[i].Offset <= safe {
			return s.snaps[i]
		}
	}
	return nil
}

// snapshotStep does a node's snapshot work for this step: start a snapshot
// when one is due, finish the one being written, compact.
func (c *Cluster) snapshotStep(s *SimNode) error {
	if !c.snapshotsOn() || !c.Up(s.ID) || s.Node.Status().Err != nil {
		return nil
	}
	if p := s.pendingSnap; p != nil && p.due <= c.Now {
		s.pendingSnap = nil
		if err := c.finishSnapshot(s, p); err != nil {
			return err
		}
	}
	ss, ok := s.SM.(Snapshotter)
	if ok && s.pendingSnap == nil && s.SM.Applied() >= s.lastTaken+eventlog.Offset(c.opts.SnapshotEvery) && c.rng.IntN(2) == 0 {
		var buf bytes.Buffer
		off, err := ss.WriteSnapshot(&buf)
		if err != nil {
			return c.fail("n%d: write a snapshot: %v", s.ID, err)
		}
		if int(off) > len(s.shadow) {
			return c.fail("n%d: snapshot at %d beyond its history of %d records", s.ID, off, len(s.shadow))
		}
		s.pendingSnap = &pendingSnapshot{offset: off, data: buf.Bytes(), hist: slices.Clip(s.shadow[:off]), forks: s.forks,
			due: c.Now + int64(c.rng.IntN(c.opts.SnapshotDelayMax+1))}
		s.lastTaken = off
	}
	return c.maybeCompact(s)
}

// finishSnapshot gives a written state its meta, as the shell's loop
// answers its writer, and makes it durable.
func (c *Cluster) finishSnapshot(s *SimNode, p *pendingSnapshot) error {
	if p.forks != s.forks || p.offset == 0 || p.offset > s.Disk.Last() || p.offset+1 < s.Disk.First() {
		c.Tracef("n%d refuses its snapshot at %d: the log moved under it", s.ID, p.offset)
		c.Stats.SnapshotsRefused++
		return nil
	}
	isr, err := s.Node.ISRAt(p.offset)
	if errors.Is(err, eventlog.ErrCorrupt) {
		// Finding the ISR read a record that fails its checksum: the
		// shell's writer gives up (the core stopped, or will when it
		// reads it); the checkers judge the node.
		c.Tracef("n%d cannot finish its snapshot at %d: %v", s.ID, p.offset, err)
		c.Stats.SnapshotsRefused++
		return c.check(s)
	}
	if err != nil {
		return c.fail("n%d: isr at %d: %v", s.ID, p.offset, err)
	}
	var epochs []eventlog.EpochStart
	for _, e := range s.Disk.Epochs() {
		if e.Start <= p.offset {
			epochs = append(epochs, e)
		}
	}
	snap := &simSnapshot{Offset: p.offset, Epoch: s.Node.EpochAt(p.offset), Epochs: epochs, ISR: isr, data: p.data, hist: p.hist}
	if snap.Epoch != s.epochs[p.offset-1] {
		return c.fail("n%d: snapshot at %d says epoch %d, its disk holds epoch %d there", s.ID, p.offset, snap.Epoch, s.epochs[p.offset-1])
	}
	s.addSnapshot(snap)
	c.Stats.Snapshots++
	c.Tracef("n%d snapshot at %d (epoch %d)", s.ID, snap.Offset, snap.Epoch)
	c.dropOldSnapshots(s)
	return nil
}

func (s *SimNode) addSnapshot(snap *simSnapshot) {
	s.snaps = slices.DeleteFunc(s.snaps, func(o *simSnapshot) bool { return o.Offset == snap.Offset })
	i, _ := slices.BinarySearchFunc(s.snaps, snap.Offset, func(o *simSnapshot, off eventlog.Offset) int {
		return int(o.Offset) - int(off)
	})
	s.snaps = slices.Insert(s.snaps, i, snap)
	s.lastTaken = max(s.lastTaken, snap.Offset)
}

// dropOldSnapshots keeps the base, the oldest after it and the latest.
func (c *Cluster) dropOldSnapshots(s *SimNode) {
	if len(s.snaps) == 0 {
		return
	}
	keep := map[eventlog.Offset]bool{s.latestSnapshot().Offset: true}
	base := s.baseSnapshot(c.safeFromForks(s))
	for _, m := range s.snaps {
		if base == nil || m.Offset > base.Offset {
			keep[m.Offset] = true
			break
		}
	}
	if base != nil {
		keep[base.Offset] = true
	}
	s.snaps = slices.DeleteFunc(s.snaps, func(m *simSnapshot) bool { return !keep[m.Offset] })
}

// maybeCompact asks the core to compact up to RetainEvents records before
// the latest snapshot, not past the base.
func (c *Cluster) maybeCompact(s *SimNode) error {
	latest, base := s.latestSnapshot(), s.baseSnapshot(c.safeFromForks(s))
	if latest == nil || base == nil || latest.Offset <= eventlog.Offset(c.opts.RetainEvents) {
		return nil
	}
	upto := min(latest.Offset-eventlog.Offset(c.opts.RetainEvents), base.Offset, s.Disk.Last())
	if upto <= s.compacted || upto < s.Disk.First() {
		return nil
	}
	s.safeDurable = max(s.safeDurable, base.Offset) // the shell's safeKey
	if err := s.Node.Compact(upto); err != nil {
		if errors.Is(err, replica.ErrOutOfRange) {
			return nil // not durable yet
		}
		if s.Node.Status().Err != nil {
			// It read a corrupt record finding the ISR there: stopped,
			// as the shell's core does; the checkers judge it.
			return c.check(s)
		}
		return c.fail("n%d: compact to %d: %v", s.ID, upto, err)
	}
	s.compacted = upto
	c.dropOldSnapshots(s)
	return c.readyOrDefer(s)
}

// dropSnapshotsAbove removes the snapshots a truncation after `after` makes
// describe a discarded branch (the shell does it before the log changes).
func (c *Cluster) dropSnapshotsAbove(s *SimNode, after eventlog.Offset) {
	s.forks++
	n := len(s.snaps)
	s.snaps = slices.DeleteFunc(s.snaps, func(m *simSnapshot) bool { return m.Offset > after })
	if k := n - len(s.snaps); k > 0 {
		c.Tracef("n%d drops %d snapshots above %d (the log forks there)", s.ID, k, after)
		c.Stats.SnapshotsDropped += k
	}
	s.lastTaken = min(s.lastTaken, after)
	s.compacted = min(s.compacted, after)
	for i := 0; i < len(c.transfers); i++ {
		if t := c.transfers[i]; t.from == s.ID && t.snap.Offset > after {
			c.transfers = slices.Delete(c.transfers, i, i+1)
			i--
		}
	}
}

// offerSnapshot starts sending node s's base snapshot to peer, which its
// core found needs one.
func (c *Cluster) offerSnapshot(s *SimNode, peer replica.NodeID) {
	if !c.snapshotsOn() {
		return
	}
	base := s.baseSnapshot(c.safeFromForks(s))
	if base == nil {
		c.Tracef("n%d: n%d needs a snapshot, none beyond any fork's reach yet", s.ID, peer)
		return
	}
	for _, t := range c.transfers {
		if t.from == s.ID && t.to == peer {
			return
		}
	}
	t := transfer{from: s.ID, to: peer, snap: base, due: c.Now + 1 + int64(c.rng.IntN(max(1, c.opts.InstallTicksMax))),
		damaged: c.rng.Float64() < c.opts.DamageSnapshotProb}
	c.Tracef("n%d sends its snapshot at %d to n%d (arrives t=%d%s)", s.ID, base.Offset, peer, t.due,
		map[bool]string{true: ", damaged", false: ""}[t.damaged])
	c.transfers = append(c.transfers, t)
}

// dropTransfers drops the snapshot streams between a and b (a broken
// connection) or, with b == None, to and from a (a crash).
func (c *Cluster) dropTransfers(a, b replica.NodeID) {
	c.transfers = slices.DeleteFunc(c.transfers, func(t transfer) bool {
		if b == replica.None {
			return t.from == a || t.to == a
		}
		return (t.from == a && t.to == b) || (t.from == b && t.to == a)
	})
}

// deliverSnapshots installs the snapshots that arrive this step.
func (c *Cluster) deliverSnapshots() error {
	for i := 0; i < len(c.transfers); i++ {
		t := c.transfers[i]
		if t.due > c.Now {
			continue
		}
		c.transfers = slices.Delete(c.transfers, i, i+1)
		i--
		r := c.node(t.to)
		if !c.Up(t.to) || c.Net.cut(t.from, t.to) {
			continue
		}
		st := r.Node.Status()
		if st.Err != nil {
			continue
		}
		if why := st.UnwantedSnapshot(t.from, t.snap.Offset, r.Disk.First(), r.Disk.Last()); why != "" {
			// As the shell, checked when the stream ends as well as when it
			// starts (see replica.Status.UnwantedSnapshot).
			c.Tracef("n%d drops the snapshot at %d from n%d: %s", r.ID, t.snap.Offset, t.from, why)
			continue
		}
		if t.damaged {
			c.Tracef("n%d rejects the snapshot at %d from n%d: it fails its SHA-256", r.ID, t.snap.Offset, t.from)
			c.Stats.SnapshotsRejected++
			continue
		}
		crashAfter := -1
		if c.Faults && c.rng.Float64() < c.opts.InstallCrashProb {
			crashAfter = c.rng.IntN(installSteps)
		}
		if err := c.install(r, t.snap, crashAfter); err != nil {
			return err
		}
	}
	return nil
}

// installSteps is the number of steps of an install after which a crash
// may stop it.
const installSteps = 6

// install installs snap on node s, as the shell does, crashing after step
// crashAfter (-1: none). At restart (s down, the marker set) it finishes
// the install before the node starts.
func (c *Cluster) install(s *SimNode, snap *simSnapshot, crashAfter int) error {
	c.Tracef("n%d installs the snapshot at %d (epoch %d)%s", s.ID, snap.Offset, snap.Epoch,
		map[bool]string{true: fmt.Sprintf(", crashing after step %d", crashAfter), false: ""}[crashAfter >= 0])
	crash := func(step int) bool {
		if step != crashAfter {
			return false
		}
		c.Stats.InstallCrashes++
		c.Crash(s.ID)
		return true
	}
	// 0: the marker, durable before anything changes.
	s.installing = snap
	if crash(0) {
		return nil
	}
	// 1: the state.
	sm, err := c.restoreState(s, snap, "install")
	if err != nil {
		return err
	}
	if crash(1) {
		return nil
	}
	// 2: what the snapshot does not hold goes to the rollback area.
	if err := c.keepForResubmission(s, snap); err != nil {
		return err
	}
	if crash(2) {
		return nil
	}
	// 3: the log begins after the snapshot.
	if err := s.Disk.Restore(snap.Offset, snap.Epoch, snap.Epochs); err != nil {
		return c.fail("n%d: restore the log after %d: %v", s.ID, snap.Offset, err)
	}
	s.setHistory(snap.hist)
	if crash(3) {
		return nil
	}
	// 4: the ISR in effect there.
	base, err := replica.EncodeISRBase(snap.ISR)
	if err == nil {
		err = s.Disk.SetMeta(replica.ISRBaseKey, base)
	}
	var idx []byte
	if err == nil {
		idx, err = replica.EncodeISRIndex(replica.ISRIndex{At: snap.ISR.At, Epoch: snap.ISR.Epoch, Chained: snap.ISR.Change.Chained,
			PrevAt: snap.ISR.Change.PrevAt, PrevEpoch: snap.ISR.Change.PrevEpoch})
	}
	if err == nil {
		err = s.Disk.SetMeta(replica.ISRIndexKey, idx)
	}
	if err != nil {
		return c.fail("n%d: %v", s.ID, err)
	}
	if crash(4) {
		return nil
	}
	// 5: it becomes the node's own snapshot; the marker goes.
	s.snaps = []*simSnapshot{snap}
	s.lastTaken, s.compacted = snap.Offset, snap.Offset
	s.installing = nil
	c.Stats.Installs++
	if crash(5) {
		return nil
	}
	if s.Down() {
		return nil // at restart: Restart goes on
	}
	// A new core on the restored log, as after a restart (a new
	// incarnation, recovering).
	n, err := replica.NewNode(c.config(s.ID), simDisk{s.Disk, s})
	if err != nil {
		return c.fail("n%d: restart its core on the snapshot: %v", s.ID, err)
	}
	s.Node, s.SM, s.lastCommit, s.primaryOf, s.lastSeq = n, sm, 0, 0, nil
	s.readyDue, s.pendingSnap = false, nil
	s.now, s.tickAt = 1, map[int64]int64{1: c.Now}
	return c.processReady(s)
}

// restoreState returns a new state restored from snap, checking invariant
// 9 against a replay from zero of the records it covers.
func (c *Cluster) restoreState(s *SimNode, snap *simSnapshot, why string) (AppState, error) {
	sm := c.app.NewState()
	ss, ok := sm.(Snapshotter)
	if !ok {
		return nil, c.fail("n%d: its state cannot restore snapshots", s.ID)
	}
	off, err := ss.RestoreSnapshot(bytes.NewReader(snap.data))
	if err != nil {
		return nil, c.fail("n%d: restore the snapshot at %d (%s): %v", s.ID, snap.Offset, why, err)
	}
	if off != snap.Offset || sm.Applied() != snap.Offset {
		return nil, c.fail("n%d: the snapshot at %d restored a state at %d (applied %d)", s.ID, snap.Offset, off, sm.Applied())
	}
	if int(snap.Offset) != len(snap.hist) {
		return nil, c.fail("n%d: the snapshot at %d covers a history of %d records", s.ID, snap.Offset, len(snap.hist))
	}
	ref := c.app.NewState()
	for _, r := range snap.hist {
		if _, err := ref.Apply(r); err != nil {
			return nil, c.fail("n%d: replay for invariant 9: %v", s.ID, err)
		}
	}
	if ref.Digest() != sm.Digest() {
		return nil, c.fail("invariant 9: n%d's state restored from its snapshot at %d (%s) differs from a replay of its %d records from zero",
			s.ID, snap.Offset, why, len(snap.hist))
	}
	c.Stats.SnapshotChecks++
	return sm, nil
}

// keepForResubmission is the shell's: the records of s's log after the
// last offset where its history and the snapshot's agree go to the
// rollback area.
func (c *Cluster) keepForResubmission(s *SimNode, snap *simSnapshot) error {
	first, last := s.Disk.First(), s.Disk.Last()
	if last < first {
		return nil
	}
	match := first - 1
	for k := min(last, snap.Offset); k >= first; k-- {
		if s.epochs[k-1] == snap.hist[k-1].Epoch {
			match = k
			break
		}
	}
	if match >= last {
		return nil
	}
	c.Stats.KeptOnInstall += int(last - match)
	c.Tracef("n%d keeps its records %d-%d for re-submission (the snapshot lacks them)", s.ID, match+1, last)
	return (mirrorDisk{c: c, s: s}).Truncate(match)
}

// setHistory replaces the node's history (its shadow and mirror) with
// hist, the history a snapshot it installs covers.
func (s *SimNode) setHistory(hist []eventlog.Record) {
	s.shadow = slices.Clip(hist)
	s.epochs, s.hashes = s.epochs[:0:0], s.hashes[:0:0]
	for _, r := range hist {
		var prev uint64
		if k := len(s.hashes); k > 0 {
			prev = s.hashes[k-1]
		}
		s.epochs = append(s.epochs, r.Epoch)
		s.hashes = append(s.hashes, prev*1099511628211^recordDigest(r))
	}
}

// rebuildState is the state of a node starting (a restart) or that must
// start over (a fork its state cannot roll back): restored from its newest
// snapshot at or before upto that the log can be replayed after, else
// empty if the log is whole. ok false: there is none (the log is
// compacted past anything it could be rebuilt from).
func (c *Cluster) rebuildState(s *SimNode, upto eventlog.Offset, why string) (AppState, bool, error) {
	for i := len(s.snaps) - 1; i >= 0; i-- {
		snap := s.snaps[i]
		if snap.Offset <= upto && snap.Offset+1 >= s.Disk.First() {
			sm, err := c.restoreState(s, snap, why)
			return sm, err == nil, err
		}
	}
	if s.Disk.First() > 1 {
		return nil, false, nil
	}
	return c.app.NewState(), true, nil
}

// counterSnapshot is Counter's snapshot.
type counterSnapshot struct {
	Applied eventlog.Offset `msgpack:"a"`
	Digest  uint64          `msgpack:"d"`
	Seen    map[string]string
}

// WriteSnapshot implements Snapshotter.
func (s *StateMachine) WriteSnapshot(w io.Writer) (eventlog.Offset, error) {
	cs := counterSnapshot{Applied: s.applied, Digest: s.digest, Seen: map[string]string{}}
	for k, v := range s.Seen {
		cs.Seen[fmt.Sprintf("%s\x00%d", k.Client, k.Seq)] = v
	}
	return s.applied, msgpack.NewEncoder(w).Encode(&cs)
}

// RestoreSnapshot implements Snapshotter.
func (s *StateMachine) RestoreSnapshot(r io.Reader) (eventlog.Offset, error) {
	var cs counterSnapshot
	if err := msgpack.NewDecoder(r).Decode(&cs); err != nil {
		return 0, err
	}
	s.applied, s.digest, s.Seen = cs.Applied, cs.Digest, map[ClientSeq]string{}
	for k, v := range cs.Seen {
		var cl string
		var seq uint64
		i := bytes.IndexByte([]byte(k), 0)
		cl = k[:i]
		if _, err := fmt.Sscanf(k[i+1:], "%d", &seq); err != nil {
			return 0, err
		}
		s.Seen[ClientSeq{cl, seq}] = v
	}
	return s.applied, nil
}
