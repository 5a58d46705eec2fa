package shell

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
	"github.com/replichat/replichat/replica/transport"
)

// Snapshots bound the disk: every SnapshotEvery applied records, the shell
// writes a snapshot of the state machine (consistent at one applied offset,
// taken from a read view while applying goes on), and once it is durable
// compacts the log up to RetainEvents records before it, so that a backup
// that lags a little still catches up by offset. A backup whose next record
// the primary no longer holds (down for long, or a replaced disk) gets the
// primary's latest snapshot streamed in chunks, with flow control, verifies
// it, installs it (the state restored, the log begun after it) and catches
// up by offset from there, as after a restart.
//
// On disk, <SnapshotDir>/<offset>/ holds a snapshot: `state`, the state
// machine's bytes, and `meta` (snapshotMeta: where it stands in the log,
// the epoch history and the ISR in effect there, the state's size and
// SHA-256). A directory is renamed into place only once both files are
// synced, so a crash leaves only temporary ones (tmp-*), removed at the next
// start unless an interrupted install names one.

// Snapshotter is an optional capability of a StateMachine, required for
// snapshots (Config.SnapshotDir).
type Snapshotter interface {
	// WriteSnapshot writes the whole state, consistent at one applied
	// offset (which it returns), to w. It may run concurrently with Apply.
	WriteSnapshot(w io.Writer) (eventlog.Offset, error)
	// RestoreSnapshot replaces the state with a snapshot written by
	// WriteSnapshot and returns the offset it covers. Not concurrently with
	// Apply.
	RestoreSnapshot(r io.Reader) (eventlog.Offset, error)
}

// snapshotMeta describes a snapshot.
type snapshotMeta struct {
	// Offset is the last record the state covers; Epoch that record's.
	Offset eventlog.Offset `msgpack:"offset"`
	Epoch  eventlog.Epoch  `msgpack:"epoch"`
	// Epochs is the epoch history up to Offset; ISR the ISR in effect
	// after it: what a log begun after Offset needs (eventlog Restore,
	// replica.ISRBaseKey).
	Epochs []eventlog.EpochStart `msgpack:"epochs"`
	ISR    replica.ISRBase       `msgpack:"isr"`
	Size   int64                 `msgpack:"size"`
	SHA256 []byte                `msgpack:"sha256"`
	// Taken is the wall time it was written, Unix nanoseconds.
	Taken int64 `msgpack:"taken"`
}

// safeKey is the log meta value holding snapshots.safe (8 bytes,
// big-endian).
const safeKey = "shell.safe"

// installKey is the log meta value naming a snapshot directory being
// installed: set before the state is replaced, emptied once the log is
// restored too, so that a crash in between finishes the install at start.
const installKey = "shell.install"

// snapshotChunk is the size of one streamed chunk, and snapshotWindow the
// chunks in flight (sent, not acknowledged): 1 MiB, a round trip's worth on
// a LAN, small enough to leave the link to the protocol's messages.
const (
	snapshotChunk      = 256 << 10
	snapshotWindow     = 4
	snapshotAckTimeout = 2 * time.Second
	snapshotMaxRetries = 15
)

// Snapshot frames travel over the peer transport like the core's messages,
// marked by a first byte that no msgpack value starts with (0xc1, "never
// used"), then a kind byte and a msgpack body.
const snapshotFrameMark = 0xc1

const (
	frameOffer byte = 1 + iota // snapshotOffer
	frameChunk                 // snapshotChunkFrame
	frameAck                   // snapshotAck
	frameAbort                 // snapshotAbort
)

type snapshotOffer struct {
	Meta   snapshotMeta `msgpack:"meta"`
	Chunks int          `msgpack:"chunks"`
}

type snapshotChunkFrame struct {
	ID   eventlog.Offset `msgpack:"id"`
	Seq  int             `msgpack:"seq"`
	Data []byte          `msgpack:"data"`
}

// snapshotAck acknowledges every chunk below Next.
type snapshotAck struct {
	ID   eventlog.Offset `msgpack:"id"`
	Next int             `msgpack:"next"`
}

type snapshotAbort struct {
	ID     eventlog.Offset `msgpack:"id"`
	Reason string          `msgpack:"reason"`
}

func encodeFrame(kind byte, body any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(snapshotFrameMark)
	buf.WriteByte(kind)
	if err := msgpack.NewEncoder(&buf).Encode(body); err != nil {
		return nil, fmt.Errorf("encode snapshot frame: %w", err)
	}
	return buf.Bytes(), nil
}

// snapshots is the shell's snapshot state. Only the loop touches its fields,
// except those under mu (the senders') and latestOff.
type snapshots struct {
	dir string
	// metas are the durable snapshots on disk, in offset order (at most a
	// few: see dropOldSnapshots); latestOff the newest one's offset, for
	// readers outside the loop. The newest may hold records a fork can
	// still discard. The base (baseMeta) is the newest whose records no
	// fork can discard: the one offered to backups, restored from when the
	// state cannot be rolled back, and the bound of compaction.
	metas     []snapshotMeta
	latestOff atomic.Uint64
	// compacted is the offset the core was last asked to compact to.
	compacted eventlog.Offset
	// taken, installed and rejected count snapshots (SnapshotStatus).
	taken, installed, rejected uint64
	// safe is the latest offset recorded as beyond any fork's reach
	// (safeKey): what safeFromForks found when the log was compacted, kept
	// across restarts (the stable offset is not).
	safe eventlog.Offset
	// taking is true while a snapshot is being written (one at a time).
	taking bool
	// lastTaken is the offset of the last snapshot started.
	lastTaken eventlog.Offset
	done      chan takenSnapshot // the writer's result, to the loop
	metaReq   chan metaRequest   // the writer's question, to the loop

	// recv is the backup's snapshot being received (nil: none).
	recv *snapshotRecv

	mu sync.Mutex
	// senders are the streams in progress to backups, by peer; inUse
	// counts the streams reading each snapshot offset (not deleted meanwhile).
	senders map[replica.NodeID]*snapshotSender
	inUse   map[eventlog.Offset]int
	wg      sync.WaitGroup
}

type takenSnapshot struct {
	meta snapshotMeta
	took time.Duration // writing it, paced (--snapshot-cpu)
	err  error
}

type metaRequest struct {
	offset eventlog.Offset
	// forks is Shell.forks when the writer began: a truncation or rollback
	// since may have changed what the offset holds.
	forks uint64
	reply chan metaReply
}

type metaReply struct {
	meta snapshotMeta
	err  error
}

// latestOffset is the offset of the latest durable snapshot (0: none).
func (sn *snapshots) latestOffset() eventlog.Offset { return eventlog.Offset(sn.latestOff.Load()) }

// add records a durable snapshot. The loop calls it; metas change under
// mu (the applier reads them in restoreBase).
func (sn *snapshots) add(m snapshotMeta) {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	sn.metas = slices.DeleteFunc(sn.metas, func(o snapshotMeta) bool { return o.Offset == m.Offset })
	i, _ := slices.BinarySearchFunc(sn.metas, m.Offset, func(o snapshotMeta, off eventlog.Offset) int { return cmp.Compare(o.Offset, off) })
	sn.metas = slices.Insert(sn.metas, i, m)
	sn.lastTaken = max(sn.lastTaken, m.Offset)
	sn.latestOff.Store(uint64(sn.metas[len(sn.metas)-1].Offset))
}

// latest returns the newest durable snapshot (nil: none).
func (sn *snapshots) latest() *snapshotMeta {
	if len(sn.metas) == 0 {
		return nil
	}
	return &sn.metas[len(sn.metas)-1]
}

// baseMeta returns the newest snapshot at or before safe (nil: none).
func (sn *snapshots) baseMeta(safe eventlog.Offset) *snapshotMeta {
	for i := len(sn.metas) - 1; i >= 0; i-- {
		if sn.metas[i].Offset <= safe {
			return &sn.metas[i]
		}
	}
	return nil
}

// snapshotStatus describes the snapshots for Status. The loop calls it.
func (s *Shell) snapshotStatus() SnapshotStatus {
	sn := &s.snaps
	safe := s.safeFromForks()
	st := SnapshotStatus{Safe: uint64(safe), LogFirst: uint64(s.log.First()), Taken: sn.taken, Installed: sn.installed,
		Rejected: sn.rejected}
	if l := sn.latest(); l != nil {
		st.Latest, st.LatestBytes = uint64(l.Offset), l.Size
	}
	if b := sn.baseMeta(safe); b != nil {
		st.Base = uint64(b.Offset)
	}
	if r := sn.recv; r != nil {
		st.ReceivingFrom, st.ReceivingOffset = r.from, uint64(r.offer.Meta.Offset)
		st.ReceivedBytes, st.ReceivingBytes = r.bytes, r.offer.Meta.Size
	}
	sn.mu.Lock()
	st.Sending = len(sn.senders)
	sn.mu.Unlock()
	return st
}

// safeFromForks is the offset up to which this replica treats records as
// beyond any fork's reach: the offset durable on every replica, or
// ForkRetain records behind the applied offset if that is later (see
// Config.ForkRetain), or the end of the compacted part of the log (it was
// compacted no further than such an offset, here or, for a snapshot
// installed, on the primary that sent it). No truncation goes below the
// first (the core's Stable); one below the others stops the replica
// (replica.ErrForkTooDeep). The stable offset is not persisted: after a
// restart, the compacted part is what this replica knows.
func (s *Shell) safeFromForks() eventlog.Offset {
	safe := max(s.stable, s.log.First()-1, s.snaps.safe)
	if f := eventlog.Offset(s.cfg.ForkRetain); f > 0 && s.ap != nil {
		if applied := s.ap.appliedOffset(); applied > f {
			safe = max(safe, applied-f)
		}
	}
	return safe
}

// snapshotsEnabled reports whether the shell keeps snapshots.
func (s *Shell) snapshotsEnabled() bool { return s.cfg.SnapshotDir != "" }

// initSnapshots finds the latest snapshot on disk and removes the
// temporary directories a crash left (but the one an interrupted install
// names).
func (s *Shell) initSnapshots() error {
	sn := &s.snaps
	sn.dir = s.cfg.SnapshotDir
	sn.done = make(chan takenSnapshot, 1)
	sn.metaReq = make(chan metaRequest)
	sn.senders = make(map[replica.NodeID]*snapshotSender)
	sn.inUse = make(map[eventlog.Offset]int)
	if !s.snapshotsEnabled() {
		return nil
	}
	if err := os.MkdirAll(sn.dir, 0o755); err != nil {
		return fmt.Errorf("snapshot directory: %w", err)
	}
	entries, err := os.ReadDir(sn.dir)
	if err != nil {
		return fmt.Errorf("snapshot directory: %w", err)
	}
	installing, _, err := s.log.Meta(installKey)
	if err != nil {
		return fmt.Errorf("read %s: %w", installKey, err)
	}
	if b, ok, err := s.log.Meta(safeKey); err != nil {
		return fmt.Errorf("read %s: %w", safeKey, err)
	} else if ok && len(b) == 8 {
		sn.safe = eventlog.Offset(binary.BigEndian.Uint64(b))
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(sn.dir, name)
		if strings.HasPrefix(name, "tmp-") {
			if len(installing) == 0 || filepath.Clean(string(installing)) != path {
				_ = os.RemoveAll(path)
			}
			continue
		}
		if _, err := strconv.ParseUint(name, 10, 64); err != nil {
			continue
		}
		m, err := readSnapshotMeta(path)
		if err != nil {
			s.logger.Warn("ignoring an unreadable snapshot", "dir", name, "err", err)
			continue
		}
		if why := s.snapshotMismatch(m); why != "" {
			// A crash in the middle of dropping it (dropSnapshotsAbove).
			s.logger.Warn("removing a snapshot of records the log no longer holds", "dir", name, "why", why)
			_ = os.RemoveAll(path)
			continue
		}
		sn.add(m)
	}
	return nil
}

// snapshotMismatch says why snapshot m does not describe this replica's
// log ("" if it does): it covers records past the log's end, or its last
// record's epoch is not the log's at that offset.
func (s *Shell) snapshotMismatch(m snapshotMeta) string {
	if m.Offset > s.log.Last() {
		return fmt.Sprintf("it covers offset %d, the log ends at %d", m.Offset, s.log.Last())
	}
	if m.Offset+1 < s.log.First() {
		return "" // older than the compacted part: nothing left to compare
	}
	var e eventlog.Epoch
	for _, es := range s.log.Epochs() {
		if es.Start <= m.Offset {
			e = es.Epoch
		}
	}
	if m.Offset == s.log.First()-1 || e == 0 {
		return "" // the log begins right after it (installed), or knows no epochs
	}
	if e != m.Epoch {
		return fmt.Sprintf("epoch %d at offset %d, the log has %d", m.Epoch, m.Offset, e)
	}
	return ""
}

func snapshotPath(dir string, off eventlog.Offset) string {
	return filepath.Join(dir, fmt.Sprintf("%020d", uint64(off)))
}

func readSnapshotMeta(dir string) (snapshotMeta, error) {
	b, err := os.ReadFile(filepath.Join(dir, "meta"))
	if err != nil {
		return snapshotMeta{}, err
	}
	var m snapshotMeta
	if err := msgpack.Unmarshal(b, &m); err != nil {
		return snapshotMeta{}, fmt.Errorf("decode snapshot meta: %w", err)
	}
	return m, nil
}

// writeFileSync writes b to path and syncs it.
func writeFileSync(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// maybeSnapshot starts a snapshot when SnapshotEvery records were applied
// since the last one. Called by the loop after each iteration.
func (s *Shell) maybeSnapshot(ctx context.Context) {
	sn := &s.snaps
	if !s.snapshotsEnabled() || s.cfg.SnapshotEvery == 0 || sn.taking || s.node == nil {
		return
	}
	applied := s.ap.appliedOffset()
	if applied < sn.lastTaken+eventlog.Offset(s.cfg.SnapshotEvery) {
		return
	}
	ss, ok := s.sm.(Snapshotter)
	if !ok {
		return
	}
	sn.taking = true
	sn.wg.Go(func() {
		start := time.Now()
		t := s.takeSnapshot(ctx, ss)
		t.took = time.Since(start)
		sn.done <- t
	})
}

// takeSnapshot writes a snapshot on its own goroutine: the state from a read
// view, then the meta the loop provides for the offset it covers.
func (s *Shell) takeSnapshot(ctx context.Context, ss Snapshotter) takenSnapshot {
	sn := &s.snaps
	tmp, err := os.MkdirTemp(sn.dir, "tmp-")
	if err != nil {
		return takenSnapshot{err: err}
	}
	fail := func(err error) takenSnapshot {
		_ = os.RemoveAll(tmp)
		return takenSnapshot{err: err}
	}
	f, err := os.Create(filepath.Join(tmp, "state"))
	if err != nil {
		return fail(err)
	}
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(f, h)}
	forks := s.forks.Load()
	off, err := ss.WriteSnapshot(Pace(ctx, cw, s.cfg.SnapshotShare))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(fmt.Errorf("write the state: %w", err))
	}
	reply := make(chan metaReply, 1)
	select {
	case sn.metaReq <- metaRequest{offset: off, forks: forks, reply: reply}:
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	var r metaReply
	select {
	case r = <-reply:
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	if r.err != nil {
		return fail(r.err)
	}
	m := r.meta
	m.Size, m.SHA256, m.Taken = cw.n, h.Sum(nil), time.Now().UnixNano()
	b, err := msgpack.Marshal(&m)
	if err != nil {
		return fail(err)
	}
	if err := writeFileSync(filepath.Join(tmp, "meta"), b); err != nil {
		return fail(err)
	}
	if err := syncDir(tmp); err != nil {
		return fail(err)
	}
	final := snapshotPath(sn.dir, m.Offset)
	_ = os.RemoveAll(final)
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	if err := syncDir(sn.dir); err != nil {
		return takenSnapshot{err: err}
	}
	return takenSnapshot{meta: m}
}

// answerMeta gives the snapshot writer where offset off stands in the log:
// its epoch, the epoch history up to it and the ISR in effect after it. A
// state that a rollback may have replaced since (a fork) is refused.
func (s *Shell) answerMeta(req metaRequest) {
	if s.node == nil || s.rollbackMarker != 0 || req.forks != s.forks.Load() || req.offset == 0 || req.offset > s.log.Last() ||
		req.offset+1 < s.log.First() {
		// The state view may hold records of a branch the log discarded
		// since (a fork): its meta would be a lie.
		req.reply <- metaReply{err: fmt.Errorf("the log moved under the snapshot at %d", req.offset)}
		return
	}
	isr, err := s.node.ISRAt(req.offset)
	if err != nil {
		req.reply <- metaReply{err: err}
		return
	}
	var epochs []eventlog.EpochStart
	for _, e := range s.log.Epochs() {
		if e.Start <= req.offset {
			epochs = append(epochs, e)
		}
	}
	req.reply <- metaReply{meta: snapshotMeta{Offset: req.offset, Epoch: s.node.EpochAt(req.offset), Epochs: epochs, ISR: isr}}
}

// snapshotTaken records a finished snapshot, drops the older ones no stream
// reads, and compacts the log up to RetainEvents records before it.
func (s *Shell) snapshotTaken(t takenSnapshot) {
	sn := &s.snaps
	sn.taking = false
	if t.err != nil {
		s.logger.Warn("snapshot failed; retrying later", "err", t.err)
		sn.lastTaken = s.ap.appliedOffset() // not again at once
		return
	}
	m := t.meta
	if s.rollbackMarker != 0 || m.Offset > s.log.Last() {
		// A truncation after its meta was answered: dropSnapshotsAbove
		// could not see it yet.
		s.logger.Warn("dropping a snapshot the log forked under", "offset", m.Offset)
		_ = os.RemoveAll(snapshotPath(sn.dir, m.Offset))
		return
	}
	sn.add(m)
	sn.taken++
	s.logger.Info("snapshot taken", "offset", m.Offset, "bytes", m.Size, "took", t.took.Round(time.Millisecond))
	s.dropOldSnapshots()
	s.maybeCompact()
}

// maybeCompact asks the core to compact the log up to RetainEvents records
// before the latest snapshot, but not past the base snapshot: a state that
// cannot be rolled back after a fork is restored from the base and the log
// replayed after it, and a backup that needs a snapshot gets the base and
// then the records after it. The loop calls it after every iteration (the
// base moves up as the offset durable on every replica does).
func (s *Shell) maybeCompact() {
	sn := &s.snaps
	latest, base := sn.latest(), sn.baseMeta(s.safeFromForks())

	if s.node == nil || latest == nil || base == nil || latest.Offset <= eventlog.Offset(s.cfg.RetainEvents) {
		return
	}
	upto := min(latest.Offset-eventlog.Offset(s.cfg.RetainEvents), base.Offset, s.log.Last())
	if upto <= sn.compacted || upto < s.log.First() {
		return
	}
	if base.Offset > sn.safe {
		// Durable before the log is compacted under it: after a restart,
		// the base must still be one (or no backup could be sent one
		// until the stable offset is learned again).
		if err := s.log.SetMeta(safeKey, binary.BigEndian.AppendUint64(nil, uint64(base.Offset))); err != nil {
			s.logger.Warn("cannot record the snapshot base", "err", err)
			return
		}
		sn.safe = base.Offset
	}
	if err := s.node.Compact(upto); err != nil {
		s.logger.Warn("cannot compact the log", "upto", upto, "err", err)
		return
	}
	sn.compacted = upto
	s.dropOldSnapshots()
}

// dropOldSnapshots keeps at most three snapshots (and those a stream or a
// restore reads): the base (the newest beyond any fork's reach), the
// oldest after it (the next base once the offset durable everywhere passes
// it: keeping only the latest would leave no base for as long as snapshots
// are taken faster than that offset moves), and the latest.
func (s *Shell) dropOldSnapshots() {
	sn := &s.snaps
	if len(sn.metas) == 0 {
		return
	}
	keep := map[eventlog.Offset]bool{sn.latest().Offset: true}
	base := sn.baseMeta(s.safeFromForks())
	for _, m := range sn.metas {
		if base == nil || m.Offset > base.Offset {
			keep[m.Offset] = true
			break
		}
	}
	if base != nil {
		keep[base.Offset] = true
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	sn.metas = slices.DeleteFunc(sn.metas, func(m snapshotMeta) bool {
		if keep[m.Offset] || sn.inUse[m.Offset] > 0 {
			return false
		}
		_ = os.RemoveAll(snapshotPath(sn.dir, m.Offset))
		return true
	})
}

// dropSnapshotsAbove removes the snapshots of records after `after`, which
// a truncation is about to discard (a fork): streams of them stop, and none
// is kept on disk (a crash before the truncation is durable leaves the log
// longer than needed, never a snapshot of a discarded branch: the meta file
// goes first, and start-up drops what no longer matches the log).
func (s *Shell) dropSnapshotsAbove(after eventlog.Offset) error {
	sn := &s.snaps
	if l := sn.latest(); l == nil || l.Offset <= after {
		sn.lastTaken = min(sn.lastTaken, after)
		return nil
	}
	sn.mu.Lock()
	for _, snd := range sn.senders {
		if snd.meta.Offset > after {
			snd.cancel()
		}
	}
	var err error
	sn.metas = slices.DeleteFunc(sn.metas, func(m snapshotMeta) bool {
		if m.Offset <= after {
			return false
		}
		dir := snapshotPath(sn.dir, m.Offset)
		if rerr := os.Remove(filepath.Join(dir, "meta")); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
			err = fmt.Errorf("drop the snapshot at %d before truncating the log after %d: %w", m.Offset, after, rerr)
		}
		_ = os.RemoveAll(dir)
		return true
	})
	sn.mu.Unlock()
	if err == nil {
		err = syncDir(sn.dir)
	}
	sn.lastTaken = min(sn.lastTaken, after)
	sn.compacted = min(sn.compacted, after)
	if l := sn.latest(); l != nil {
		sn.latestOff.Store(uint64(l.Offset))
	} else {
		sn.latestOff.Store(0)
	}
	s.logger.Warn("dropped the snapshots of records a fork discards", "after", after)
	return err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ---- streaming a snapshot to a backup (primary side) ----

// snapshotSender streams one snapshot to one backup, on its own goroutine.
type snapshotSender struct {
	peer replica.NodeID
	meta snapshotMeta
	acks chan snapshotAck
	// poke is the core asking again for this peer: a stream that is not
	// being acknowledged starts over with its offer (the backup restarted
	// and lost the transfer; without it a new one waited for the old one's
	// retries, about 30 s).
	poke chan struct{}
	// cancel stops the stream (its snapshot was dropped: a fork).
	cancel context.CancelFunc
}

// offerSnapshot starts streaming the latest snapshot to peer, which the
// core found needs one, unless a stream to it runs already.
func (s *Shell) offerSnapshot(ctx context.Context, peer replica.NodeID) {
	sn := &s.snaps
	// The base, not the latest: a backup that installed records a fork may
	// still discard would have to truncate below its log's start.
	base := sn.baseMeta(s.safeFromForks())
	if base == nil {
		s.logger.Warn("a backup needs a snapshot and this replica has none beyond any fork's reach yet", "peer", peer,
			"latest", sn.latestOffset(), "stable", s.stable)
		return
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if snd := sn.senders[peer]; snd != nil {
		if snd.meta.Offset >= base.Offset {
			select {
			case snd.poke <- struct{}{}:
			default:
			}
			return
		}
		// A newer base exists: the backup refuses a snapshot older than
		// the log start it was given, so the old stream only wastes time.
		delete(sn.senders, peer)
		snd.cancel()
	}
	sctx, cancel := context.WithCancel(ctx)
	snd := &snapshotSender{peer: peer, meta: *base, acks: make(chan snapshotAck, 16), poke: make(chan struct{}, 1), cancel: cancel}
	sn.senders[peer] = snd
	sn.inUse[snd.meta.Offset]++
	sn.wg.Go(func() {
		defer cancel()
		err := s.streamSnapshot(sctx, snd)
		sn.mu.Lock()
		if sn.senders[peer] == snd {
			delete(sn.senders, peer)
		}
		sn.inUse[snd.meta.Offset]--
		sn.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			s.logger.Warn("snapshot stream to a backup failed; it is offered again when the backup asks", "peer", peer, "err", err)
		}
	})
}

// streamSnapshot sends the offer and the chunks, at most snapshotWindow
// unacknowledged, resending from the last acknowledged chunk when
// acknowledgements stop (the transport drops messages when its queue is
// full, and connections break).
func (s *Shell) streamSnapshot(ctx context.Context, snd *snapshotSender) error {
	f, err := os.Open(filepath.Join(snapshotPath(s.snaps.dir, snd.meta.Offset), "state"))
	if err != nil {
		return err
	}
	defer f.Close()
	chunks := int((snd.meta.Size + snapshotChunk - 1) / snapshotChunk)
	offer, err := encodeFrame(frameOffer, snapshotOffer{Meta: snd.meta, Chunks: chunks})
	if err != nil {
		return err
	}
	s.logger.Info("streaming a snapshot to a backup", "peer", snd.peer, "offset", snd.meta.Offset, "bytes", snd.meta.Size)
	start := time.Now()
	s.tr.Send(transport.NodeID(snd.peer), offer)
	buf := make([]byte, snapshotChunk)
	next, acked, retries := 0, 0, 0
	timer := time.NewTimer(snapshotAckTimeout)
	defer timer.Stop()
	for {
		for next < chunks && next-acked < snapshotWindow {
			n, err := f.ReadAt(buf, int64(next)*snapshotChunk)
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			fr, err := encodeFrame(frameChunk, snapshotChunkFrame{ID: snd.meta.Offset, Seq: next, Data: buf[:n]})
			if err != nil {
				return err
			}
			s.tr.Send(transport.NodeID(snd.peer), fr)
			next++
		}
		select {
		case <-ctx.Done():
			s.sendFrame(snd.peer, frameAbort, snapshotAbort{ID: snd.meta.Offset, Reason: "the primary dropped this snapshot"})
			return ctx.Err()
		case a := <-snd.acks:
			if a.ID != snd.meta.Offset {
				continue
			}
			if a.Next > acked {
				acked, retries = a.Next, 0
				next = max(next, acked)
			}
			if a.Next >= chunks {
				s.logger.Info("snapshot streamed", "peer", snd.peer, "offset", snd.meta.Offset, "took", time.Since(start).Round(time.Millisecond))
				return nil
			}
		case <-snd.poke:
			if retries == 0 {
				continue // acknowledged lately: the stream is alive
			}
			// Stalled while the backup is heard from: whatever it had
			// of this stream may be gone. Offer it again; a backup that
			// still has the transfer answers with its position.
			next, acked = 0, 0
			s.tr.Send(transport.NodeID(snd.peer), offer)
		case <-timer.C:
			retries++
			if retries > snapshotMaxRetries {
				return fmt.Errorf("no acknowledgement for %v, %d times", snapshotAckTimeout, retries-1)
			}
			next = acked
			if acked == 0 {
				s.tr.Send(transport.NodeID(snd.peer), offer)
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(snapshotAckTimeout)
	}
}

// ---- receiving and installing a snapshot (backup side) ----

// snapshotRecv is a snapshot being received. Only the loop uses it.
type snapshotRecv struct {
	from   replica.NodeID
	offer  snapshotOffer
	dir    string
	f      *os.File
	h      hash.Hash
	next   int
	bytes  int64
	start  time.Time
	lastAt time.Time
}

// stepSnapshotFrame handles a snapshot frame from peer (in.Msg starts with
// snapshotFrameMark). The loop calls it.
func (s *Shell) stepSnapshotFrame(ctx context.Context, in transport.Inbound) {
	if len(in.Msg) < 2 {
		return
	}
	kind, body := in.Msg[1], in.Msg[2:]
	peer := replica.NodeID(in.From)
	switch kind {
	case frameAck:
		var a snapshotAck
		if msgpack.Unmarshal(body, &a) != nil {
			return
		}
		s.snaps.mu.Lock()
		snd := s.snaps.senders[peer]
		s.snaps.mu.Unlock()
		if snd != nil {
			select {
			case snd.acks <- a:
			default:
			}
		}
	case frameOffer:
		var o snapshotOffer
		if msgpack.Unmarshal(body, &o) != nil {
			return
		}
		s.receiveOffer(peer, o)
	case frameChunk:
		var c snapshotChunkFrame
		if msgpack.Unmarshal(body, &c) != nil {
			return
		}
		s.receiveChunk(peer, c)
	case frameAbort:
		var a snapshotAbort
		if msgpack.Unmarshal(body, &a) != nil {
			return
		}
		if r := s.snaps.recv; r != nil && r.from == peer && r.offer.Meta.Offset == a.ID {
			s.abortRecv("the primary aborted the stream")
		}
	}
}

func (s *Shell) sendFrame(to replica.NodeID, kind byte, body any) {
	b, err := encodeFrame(kind, body)
	if err != nil {
		s.logger.Warn("encode snapshot frame", "err", err)
		return
	}
	s.tr.Send(transport.NodeID(to), b)
}

// receiveOffer starts receiving a snapshot from this backup's primary.
func (s *Shell) receiveOffer(from replica.NodeID, o snapshotOffer) {
	sn := &s.snaps
	if !s.snapshotsEnabled() {
		s.sendFrame(from, frameAbort, snapshotAbort{ID: o.Meta.Offset, Reason: "snapshots are disabled on this replica"})
		return
	}
	if s.node == nil {
		return
	}
	if why := s.unwantedSnapshot(from, o.Meta.Offset); why != "" {
		return
	}
	if r := sn.recv; r != nil {
		if r.from == from && r.offer.Meta.Offset == o.Meta.Offset {
			s.sendFrame(from, frameAck, snapshotAck{ID: o.Meta.Offset, Next: r.next})
			return
		}
		s.abortRecv("a newer offer")
	}
	dir, err := os.MkdirTemp(sn.dir, "tmp-recv-")
	if err != nil {
		s.logger.Warn("cannot receive a snapshot", "err", err)
		return
	}
	f, err := os.Create(filepath.Join(dir, "state"))
	if err != nil {
		_ = os.RemoveAll(dir)
		s.logger.Warn("cannot receive a snapshot", "err", err)
		return
	}
	now := time.Now()
	sn.recv = &snapshotRecv{from: from, offer: o, dir: dir, f: f, h: sha256.New(), start: now, lastAt: now}
	s.logger.Info("receiving a snapshot", "from", from, "offset", o.Meta.Offset, "bytes", o.Meta.Size, "chunks", o.Chunks)
	if o.Chunks == 0 {
		s.finishRecv()
	}
}

// unwantedSnapshot is replica.Status.UnwantedSnapshot for this replica's
// core and log.
func (s *Shell) unwantedSnapshot(from replica.NodeID, off eventlog.Offset) string {
	return s.node.Status().UnwantedSnapshot(from, off, s.log.First(), s.log.Last())
}

// receiveChunk takes the next chunk (others are acknowledged with what is
// expected: the sender goes back to it).
func (s *Shell) receiveChunk(from replica.NodeID, c snapshotChunkFrame) {
	r := s.snaps.recv
	if r == nil || r.from != from || c.ID != r.offer.Meta.Offset {
		return
	}
	if c.Seq == r.next {
		if _, err := r.f.Write(c.Data); err != nil {
			s.abortRecv(fmt.Sprintf("write: %v", err))
			return
		}
		r.h.Write(c.Data)
		r.next++
		r.bytes += int64(len(c.Data))
		if time.Since(r.lastAt) >= time.Second {
			r.lastAt = time.Now()
			s.logger.Info("receiving a snapshot", "from", from, "offset", r.offer.Meta.Offset,
				"received_bytes", r.bytes, "of", r.offer.Meta.Size)
		}
	}
	s.sendFrame(from, frameAck, snapshotAck{ID: c.ID, Next: r.next})
	if r.next == r.offer.Chunks {
		s.finishRecv()
	}
}

// abortRecv drops the snapshot being received.
func (s *Shell) abortRecv(why string) {
	r := s.snaps.recv
	if r == nil {
		return
	}
	s.logger.Warn("dropping a snapshot being received", "offset", r.offer.Meta.Offset, "why", why)
	r.f.Close()
	_ = os.RemoveAll(r.dir)
	s.snaps.recv = nil
}

// finishRecv verifies a fully received snapshot and schedules its install
// (at the end of the loop's iteration).
func (s *Shell) finishRecv() {
	r := s.snaps.recv
	s.snaps.recv = nil
	m := r.offer.Meta
	err := r.f.Sync()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
	case r.bytes != m.Size:
		err = fmt.Errorf("received %d bytes, the snapshot has %d", r.bytes, m.Size)
	case !bytes.Equal(r.h.Sum(nil), m.SHA256):
		err = errors.New("the received bytes fail the snapshot's SHA-256")
	}
	if err == nil {
		var b []byte
		if b, err = msgpack.Marshal(&m); err == nil {
			err = writeFileSync(filepath.Join(r.dir, "meta"), b)
		}
	}
	if err == nil {
		err = syncDir(r.dir)
	}
	if err != nil {
		_ = os.RemoveAll(r.dir)
		s.snaps.rejected++
		s.logger.Warn("rejected a received snapshot; the primary offers it again", "offset", m.Offset, "err", err)
		return
	}
	s.logger.Info("snapshot received and verified", "offset", m.Offset, "bytes", m.Size,
		"took", time.Since(r.start).Round(time.Millisecond))
	s.pendingInstall = &pendingInstall{dir: r.dir, from: r.from, offset: m.Offset}
}

// pendingInstall is a verified snapshot to install at the end of the
// loop's iteration: its directory, the primary that sent it and the offset
// it covers.
type pendingInstall struct {
	dir    string
	from   replica.NodeID
	offset eventlog.Offset
}

// installNow installs the verified snapshot in s.pendingInstall: the state
// is replaced, the log begun after the snapshot, and the core restarted on
// it (a new incarnation, recovering: it catches up by offset and rejoins).
// The loop calls it; it blocks the loop for the time of the state's
// restore, which is fine for a backup that is out of the ISR anyway.
func (s *Shell) installNow(ctx context.Context) {
	p := s.pendingInstall
	s.pendingInstall = nil
	dir := p.dir
	if why := s.unwantedSnapshot(p.from, p.offset); why != "" {
		s.logger.Info("dropping a received snapshot", "offset", p.offset, "from", p.from, "why", why)
		_ = os.RemoveAll(dir)
		return
	}
	if err := s.log.SetMeta(installKey, []byte(dir)); err != nil {
		s.logger.Warn("cannot record the snapshot install", "err", err)
		return
	}
	if err := s.install(ctx, dir); err != nil {
		s.installErr = err
		s.logger.Error("snapshot install failed", "dir", dir, "err", err)
	}
}

// install does the install of the snapshot in dir, the install marker set.
// It is also what Run does at start when the marker is found (ctx nil: Run
// then creates the applier and the core itself).
func (s *Shell) install(ctx context.Context, dir string) error {
	m, err := readSnapshotMeta(dir)
	if err != nil {
		return err
	}
	ss, ok := s.sm.(Snapshotter)
	if !ok {
		return errors.New("the state machine cannot restore snapshots")
	}
	start := time.Now()
	if s.ap != nil {
		s.ap.close()
		s.ap.failAll(fmt.Errorf("%w: the replica is installing a snapshot", ErrOutcomeUnknown))
	}
	f, err := os.Open(filepath.Join(dir, "state"))
	if err != nil {
		return err
	}
	off, err := ss.RestoreSnapshot(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("restore the state: %w", err)
	}
	if off != m.Offset {
		return fmt.Errorf("the restored state covers offset %d, its meta says %d", off, m.Offset)
	}
	if err := s.keepForResubmission(m); err != nil {
		return err
	}
	if err := s.log.Restore(m.Offset, m.Epoch, m.Epochs); err != nil {
		return fmt.Errorf("begin the log after the snapshot: %w", err)
	}
	base, err := replica.EncodeISRBase(m.ISR)
	if err != nil {
		return err
	}
	if err := s.log.SetMeta(replica.ISRBaseKey, base); err != nil {
		return err
	}
	idx, err := replica.EncodeISRIndex(replica.ISRIndex{At: m.ISR.At, Epoch: m.ISR.Epoch, Chained: m.ISR.Change.Chained,
		PrevAt: m.ISR.Change.PrevAt, PrevEpoch: m.ISR.Change.PrevEpoch})
	if err != nil {
		return err
	}
	if err := s.log.SetMeta(replica.ISRIndexKey, idx); err != nil {
		return err
	}
	// The snapshot becomes this replica's own latest.
	final := snapshotPath(s.snaps.dir, m.Offset)
	if filepath.Clean(dir) != final {
		_ = os.RemoveAll(final)
		if err := os.Rename(dir, final); err != nil {
			return err
		}
		_ = syncDir(s.snaps.dir)
	}
	if err := s.log.SetMeta(installKey, nil); err != nil {
		return err
	}
	s.snaps.add(m)
	s.snaps.installed++
	s.snaps.compacted = max(s.snaps.compacted, m.Offset)
	s.dropOldSnapshots()
	s.rollbackMarker = 0
	if err := s.log.SetMeta(rollbackKey, nil); err != nil {
		return err
	}
	if ctx != nil {
		// At run time: a new applier and a new core on the restored log.
		s.ap = newApplier(s.log, s.sm, m.Offset, s.logger)
		s.ap.restoreBase = s.restoreBase
		go s.ap.run()
		node, err := replica.NewNode(s.cfg.Node, s.log)
		if err != nil {
			return fmt.Errorf("restart the replication core on the snapshot: %w", err)
		}
		s.node = node
		s.coreNow = 1
		s.ticks.init(tickMemory)
		s.ticks.put(s.coreNow, time.Now())
		s.checkDisk()
	}
	s.logger.Info("snapshot installed; catching up from it", "offset", m.Offset, "epoch", m.Epoch,
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// restoreBase restores the state machine from the newest snapshot at or
// before `to` whose following records the log still holds (ok false if
// there is none): the applier's rollback when the state machine cannot
// undo by itself. It runs on the applier's goroutine.
func (s *Shell) restoreBase(to eventlog.Offset) (eventlog.Offset, bool, error) {
	ss, ok := s.sm.(Snapshotter)
	if !ok || !s.snapshotsEnabled() {
		return 0, false, nil
	}
	sn := &s.snaps
	first := s.log.First()
	sn.mu.Lock()
	var pick *snapshotMeta
	for i := len(sn.metas) - 1; i >= 0; i-- {
		if m := sn.metas[i]; m.Offset <= to && m.Offset+1 >= first {
			pick = &m
			break
		}
	}
	if pick != nil {
		sn.inUse[pick.Offset]++
	}
	sn.mu.Unlock()
	if pick == nil {
		return 0, false, nil
	}
	defer func() {
		sn.mu.Lock()
		sn.inUse[pick.Offset]--
		sn.mu.Unlock()
	}()
	f, err := os.Open(filepath.Join(snapshotPath(sn.dir, pick.Offset), "state"))
	if err != nil {
		return 0, false, fmt.Errorf("restore the state from the snapshot at %d: %w", pick.Offset, err)
	}
	defer f.Close()
	h := sha256.New()
	off, err := ss.RestoreSnapshot(io.TeeReader(f, h))
	if err == nil && off != pick.Offset {
		err = fmt.Errorf("it covers offset %d, its meta says %d", off, pick.Offset)
	}
	if err == nil && !bytes.Equal(h.Sum(nil), pick.SHA256) {
		// RestoreSnapshot may stop before the end: hash the rest.
		_, _ = io.Copy(h, f)
		if !bytes.Equal(h.Sum(nil), pick.SHA256) {
			err = errors.New("its bytes fail the snapshot's SHA-256")
		}
	}
	if err != nil {
		return 0, false, fmt.Errorf("restore the state from the snapshot at %d: %w", pick.Offset, err)
	}
	return off, true, nil
}

// keepForResubmission moves the records of this replica's log that the
// snapshot m does not hold into the rollback area before the log is begun
// after m: records of a branch that a fork discarded (this replica was on
// the losing side, and the winner compacted past the fork point) and
// records beyond m. The core re-submits the ones carrying a client request
// once it runs on the restored log; deduplication drops those the snapshot
// or the primary's log already holds. Records up to the last offset where
// both histories have the same epoch are the snapshot's own (log
// matching): they are just dropped.
func (s *Shell) keepForResubmission(m snapshotMeta) error {
	first, last := s.log.First(), s.log.Last()
	if last < first {
		return nil // nothing retained (an install interrupted after this step)
	}
	mine := s.log.Epochs()
	epochAt := func(es []eventlog.EpochStart, off eventlog.Offset) eventlog.Epoch {
		var e eventlog.Epoch
		for _, x := range es {
			if x.Start <= off {
				e = x.Epoch
			}
		}
		return e
	}
	// The matching prefix ends at a candidate offset: the end of the
	// shorter log, or just before an epoch starts in either history.
	match := first - 1
	cands := []eventlog.Offset{min(last, m.Offset)}
	for _, x := range append(slices.Clone(mine), m.Epochs...) {
		if x.Start > 0 {
			cands = append(cands, x.Start-1)
		}
	}
	for _, k := range cands {
		if k >= first && k <= min(last, m.Offset) && k > match && epochAt(mine, k) == epochAt(m.Epochs, k) {
			match = k
		}
	}
	if match >= last {
		return nil
	}
	s.logger.Info("keeping the log's records the snapshot does not hold for re-submission", "from", match+1, "to", last)
	if err := s.log.Truncate(match); err != nil {
		return fmt.Errorf("move the records after %d to the rollback area: %w", match, err)
	}
	return nil
}

// checkInstallAtStart finishes an install that a crash interrupted.
func (s *Shell) checkInstallAtStart() error {
	b, ok, err := s.log.Meta(installKey)
	if err != nil || !ok || len(b) == 0 {
		return err
	}
	dir := string(b)
	s.logger.Warn("a snapshot install was interrupted; finishing it", "dir", dir)
	if err := s.install(nil, dir); err != nil {
		return fmt.Errorf("finish the interrupted snapshot install from %s: %w", dir, err)
	}
	return nil
}

// offersOf returns the peers the core just told that they need a snapshot.
func offersOf(msgs []replica.Message) []replica.NodeID {
	var out []replica.NodeID
	for _, m := range msgs {
		if m.Type == replica.MsgSnapshot && !slices.Contains(out, m.To) {
			out = append(out, m.To)
		}
	}
	return out
}
