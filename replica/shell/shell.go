package shell

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/replica"
	"github.com/replichat/replichat/replica/transport"
)

// Log is the durable log the shell writes: the core's read view plus the
// writes its Ready asks for.
type Log interface {
	replica.LogReader
	Append(recs []eventlog.Record) error
	Truncate(after eventlog.Offset) error
	AddEpoch(e eventlog.EpochStart) error
	DiscardRolledBack(n int) error
	SetMeta(name string, value []byte) error
	// Compact and Restore bound the log (snapshot.go).
	Compact(upto eventlog.Offset) error
	Restore(last eventlog.Offset, lastEpoch eventlog.Epoch, epochs []eventlog.EpochStart) error
}

// StateMachine receives committed records in offset order.
type StateMachine interface {
	Apply(recs []eventlog.Record) error
	Applied() (eventlog.Offset, error)
	// Reset discards the whole state (Applied becomes 0) so that the log can
	// be replayed; needed when a fork forces truncation below what was
	// applied.
	Reset() error
}

// Rollbacker is an optional capability of a StateMachine: undoing the
// records it applied after an offset, so that a log truncated below what was
// applied (only after a partition forked the log) costs work in proportion
// to the records undone, not a rebuild from the whole log.
type Rollbacker interface {
	// RollbackTo undoes the records applied after `after` and returns the
	// offset the state now ends at: at most after (the caller replays the
	// records between it and after from the log). An error means it cannot
	// (its undo history does not reach back that far, or a store failure):
	// the caller then resets the state and replays the log.
	RollbackTo(after eventlog.Offset) (eventlog.Offset, error)
	// SetStable tells the state machine that every record up to off is
	// durable on every replica of the cluster, so no truncation can ever
	// reach it: it needs no undo history for those records. off only grows.
	SetStable(off eventlog.Offset)
}

// Transport carries encoded core messages between replicas. Sends may be
// lost; the protocol retries.
type Transport interface {
	Send(to transport.NodeID, msg []byte) bool
	Inbox() <-chan transport.Inbound
}

// Errors of Propose and ReadBarrier.
var (
	// ErrStopped: the shell is not running (any more). From Propose, only
	// for a proposal the core never took (else ErrOutcomeUnknown).
	ErrStopped = errors.New("shell: stopped")
	// ErrOutcomeUnknown: the core took the proposal into its log, and then
	// this replica could not see it through: it stepped down, stopped, or
	// its log was truncated below the proposal after a failover. The records
	// may still commit (another replica may hold them, or a truncation
	// re-submits them), so the request is neither done nor failed: the
	// client must retry it with the same sequence, which deduplication
	// resolves. Every error that says "not applied" (replica.ErrNotPrimary,
	// ErrStopped, ErrBackpressure) is returned only for proposals the core
	// never took (DESIGN.md: definite errors are definite).
	ErrOutcomeUnknown = errors.New("shell: outcome unknown")
	// ErrNoLease: this primary does not hold its read lease: it has not
	// heard, recently enough, from every member of its ISR that they still
	// follow it, so another replica may have taken over (ReadBarrier).
	ErrNoLease = errors.New("shell: primary lease not held")
	// ErrLogLost is returned by Run when the log holds less than the state
	// derived from it applied: the log lost records (a damaged or replaced
	// file). The replica must be repaired (chatd --repair).
	ErrLogLost = errors.New("shell: the log lost records it had")
)

// rollbackKey is the log meta value that records a rollback of the state
// machine still due: the offset the state must be rolled back to at most,
// written (synced) before the loop truncates the log below the applied
// state, and cleared once the rollback is done. After a crash in between,
// the state (not synced on every commit) could still hold records that the
// log no longer has at their offsets, and resuming on top of it would be
// silently wrong: Run finishes the rollback first.
const rollbackKey = "shell.rollback"

// Config configures a Shell.
type Config struct {
	Node         replica.Config
	Log          Log
	StateMachine StateMachine
	Transport    Transport
	// Addrs maps every replica to its client address, for status and for
	// redirecting clients to the primary.
	Addrs map[replica.NodeID]string
	// TickInterval is the duration of one core tick. Default 10ms.
	TickInterval time.Duration
	// LagSamples is the capacity of the lag sample buffer. Default 1<<17.
	LagSamples int
	// ObserveLag, if set, gets every lag sample as it is taken (see lag.go).
	ObserveLag func(LagSample)
	// DiskFree, if set, returns the free space of the filesystem holding
	// the replica's data (statfs), and DiskReserve is the free space below
	// which the replica stops taking writes until there is room again (see
	// disk.go). Nil disables the guard (ENOSPC is still handled).
	DiskFree    func() (uint64, error)
	DiskReserve uint64
	// SnapshotDir is where snapshots are kept ("" disables them, and with
	// them compaction and installing one on a backup that needs it).
	// SnapshotEvery is how many applied records start a new snapshot (0:
	// none taken here), RetainEvents how many records the log keeps before
	// the latest snapshot, for backups that lag a little (snapshot.go).
	SnapshotDir   string
	SnapshotEvery uint64
	RetainEvents  uint64
	// ForkRetain bounds how far this replica may treat records as safe from
	// a fork although they are not yet durable on every replica (a replica
	// down, or cut off): compaction and the state machine's undo history
	// (Rollbacker.SetStable) stop at the offset durable on every replica
	// (replica.Ready.Stable), or ForkRetain records behind the applied
	// offset if that is later. 0: never past it (the disk then grows while
	// a replica stays behind). A fork deeper than ForkRetain on this
	// replica's side stops it (ErrForkTooDeep) and loses what its
	// compacted part held; see snapshot.go.
	ForkRetain uint64
	// SnapshotShare is the share of one core writing a snapshot may take
	// (0: DefaultSnapshotShare; 1: unpaced; see pace.go).
	SnapshotShare float64
	Logger        *slog.Logger
}

// Shell runs one replica. Create it with New, run it with Run.
type Shell struct {
	cfg    Config
	log    Log
	sm     StateMachine
	tr     Transport
	logger *slog.Logger

	propc   chan *proposal
	forcec  chan chan error
	stopped chan struct{} // closed when Run returns

	status atomic.Pointer[Status]
	lag    lagRing

	// Loop-owned state (only the Run goroutine touches these).
	node     *replica.Node
	ap       *applier
	appended appendTimes
	match    map[replica.NodeID]eventlog.Offset
	catchUp  catchUpLog
	// commit is the commit of the latest Ready. applyHeld is true while
	// the replica is a recovering backup: a restarted backup catching up
	// with the primary. Its commit is then handed to the applier only once
	// it is in sync again (or leads), so that applying the chat state, which
	// is slower than appending to the log, does not take the CPU the
	// catch-up of the log needs: being in sync depends on the log alone, and
	// only a primary serves the state.
	commit    eventlog.Offset
	applyHeld bool
	// rollbackMarker is the rollbackKey value held in the log: the offset
	// plus one that the state must be rolled back to at most; 0 when none.
	rollbackMarker eventlog.Offset
	// coreNow counts the core's ticks as the core does (its clock starts at
	// 1), and ticks remembers the wall time of the recent ones: the lease
	// is measured on the wall clock from the tick it began at.
	coreNow int64
	ticks   tickTimes
	// The disk guard's view (disk.go): full while below the reserve.
	diskFull        bool
	diskFreeBytes   uint64
	diskProbeFailed bool
	// noSpaceWait is the wait before the core restarts after a write
	// failed with ENOSPC: doubled while failures repeat, 0 once a Ready was
	// written again.
	noSpaceWait time.Duration
	// snaps is the snapshot state (snapshot.go); pendingInstall a verified
	// snapshot directory to install at the end of this iteration, and
	// installErr the last install's failure.
	snaps          snapshots
	pendingInstall *pendingInstall
	installErr     error
	// corruptApplied: the applier met a corrupt record; the core failed.
	corruptApplied bool
	// identity is the last identity publish formatted, and its text: it
	// rarely changes, and formatting it at every loop iteration was a tenth
	// of an idle replica's profile.
	identity struct {
		id   replica.Identity
		text string
	}
	// stable is the latest Ready.Stable.
	stable eventlog.Offset
	// forks counts truncations of the log and rollbacks of the state
	// finished: a snapshot whose view was taken across a change of it may
	// hold records of a discarded branch (answerMeta). Written by the
	// loop, read by the snapshot writer.
	forks atomic.Uint64
}

type proposal struct {
	recs []eventlog.Record
	// Identity of the last record, checked when its offset is applied.
	clientID string
	seq      uint64
	done     chan proposalResult // capacity 1
}

type proposalResult struct {
	last eventlog.Offset
	err  error
}

// New validates cfg and returns a Shell.
func New(cfg Config) (*Shell, error) {
	if cfg.Log == nil || cfg.StateMachine == nil || cfg.Transport == nil {
		return nil, errors.New("shell: config needs Log, StateMachine and Transport")
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 10 * time.Millisecond
	}
	if cfg.SnapshotShare <= 0 {
		cfg.SnapshotShare = DefaultSnapshotShare
	}
	if cfg.LagSamples <= 0 {
		cfg.LagSamples = 1 << 17
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Node.Logger = cfg.Logger
	s := &Shell{
		cfg:     cfg,
		log:     cfg.Log,
		sm:      cfg.StateMachine,
		tr:      cfg.Transport,
		logger:  cfg.Logger.With("node", cfg.Node.ID),
		propc:   make(chan *proposal, 1024),
		forcec:  make(chan chan error),
		stopped: make(chan struct{}),
		match:   make(map[replica.NodeID]eventlog.Offset),
		coreNow: 1,
	}
	s.ticks.init(tickMemory)
	s.lag.init(cfg.LagSamples, cfg.ObserveLag)
	s.appended.init(cfg.LagSamples)
	s.status.Store(&Status{ID: cfg.Node.ID, Role: "backup", Waiting: "starting"})
	return s, nil
}

// Propose replicates recs and returns once the last of them is committed
// and applied, with its offset. It fails with an error wrapping
// replica.ErrNotPrimary (or another core error, each meaning "not applied"),
// ErrStopped (not taken), ErrOutcomeUnknown (taken, fate unknown: retry with
// the same sequence) or ctx's error (fate unknown likewise).
func (s *Shell) Propose(ctx context.Context, recs []eventlog.Record) (eventlog.Offset, error) {
	if len(recs) == 0 {
		return 0, errors.New("shell: nothing to propose")
	}
	p := &proposal{recs: recs, clientID: recs[len(recs)-1].ClientID, seq: recs[len(recs)-1].Seq,
		done: make(chan proposalResult, 1)}
	select {
	case s.propc <- p:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-s.stopped:
		return 0, ErrStopped
	}
	select {
	case r := <-p.done:
		return r.last, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-s.stopped:
		return 0, ErrStopped
	}
}

// ForceLead asks the core to take over even though the election rules do not
// allow it yet: the operator's explicit, possibly lossy recovery.
func (s *Shell) ForceLead(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case s.forcec <- reply:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		return ErrStopped
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Status returns the latest snapshot of the replica's state. It is cheap.
func (s *Shell) Status() Status { return *s.status.Load() }

// maxDrain bounds the inputs taken in one loop iteration, so that a flood of
// messages cannot starve the Ready processing (and so the ticks).
const maxDrain = 4096

// maxDrainBytes bounds the peer message bytes taken in one loop iteration
// (the message that crosses it included). A backup catching up finds a full
// window of Appends waiting (MaxInflight * MaxBatchBytes); persisting them in
// one Ready kept the loop from ticking for so long that it took itself for
// paused (Node.Paused: a new incarnation, recovering, a fetch round) and,
// when the primary stalled alike, caused failovers. A bounded iteration
// still shares its fsync among several Appends.
const maxDrainBytes = 1 << 20

// Run drives the replica until ctx is done (returning nil) or a write to the
// log or state machine fails (returning the error: the replica must stop, as
// the core believes the Ready was carried out).
func (s *Shell) Run(ctx context.Context) (err error) {
	defer close(s.stopped)
	// The snapshot goroutines end with this context, before Run returns.
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		s.snaps.wg.Wait()
	}()
	if err := s.initSnapshots(); err != nil {
		return err
	}
	if err := s.checkInstallAtStart(); err != nil {
		return err
	}
	applied, err := s.recoverState()
	if err != nil {
		return err
	}
	s.ap = newApplier(s.log, s.sm, applied, s.logger)
	s.ap.restoreBase = s.restoreBase
	if s.rollbackMarker != 0 {
		s.ap.scheduleRollback(s.rollbackMarker - 1)
	}
	go s.ap.run()
	defer func() {
		s.ap.close()
		s.ap.failAll(fmt.Errorf("%w: the replica stopped", ErrOutcomeUnknown))
	}()
	id, created, err := replica.EnsureIdentity(s.log, s.cfg.Node.ID, crand.Reader)
	if err != nil {
		return fmt.Errorf("data directory identity: %w", err)
	}
	if created {
		s.logger.Info("created the data directory's identity", "identity", id.String(), "legacy", id.Legacy)
	}
	node, err := replica.NewNode(s.cfg.Node, s.log)
	if err != nil {
		return fmt.Errorf("start replication core: %w", err)
	}
	s.node = node
	s.applyHeld = holdApply(node.Status())
	// Started on a full disk: it runs, serves what it can, and takes no
	// writes (its first Ready, a tiny hard state, fits the reserve).
	s.checkDisk()
	s.publishStatus()
	interval := s.cfg.TickInterval
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	lastTick := time.Now()
	s.ticks.put(s.coreNow, lastTick)
	inbox := s.tr.Inbox()
	for {
		took := 0 // peer message bytes taken this iteration
		var applyFailed <-chan struct{}
		if !s.corruptApplied {
			applyFailed = s.ap.failed
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			// The wall time now, not the tick's: a tick that fired while
			// the loop was stuck (stopped, starved, in a long write) would
			// hide the gap.
			s.tick(time.Now(), &lastTick)
		case in := <-inbox:
			s.checkClock(&lastTick)
			s.step(ctx, in)
			took = len(in.Msg)
		case p := <-s.propc:
			// A proposal that waited while this process was stopped must
			// meet a core that knows it was stopped: a primary paused past
			// the failure timeout steps down before taking it (else the
			// proposal would enter a deposed primary's log).
			s.checkClock(&lastTick)
			s.propose(p)
		case reply := <-s.forcec:
			reply <- s.node.ForceLead()
		case <-applyFailed:
			if !errors.Is(s.ap.err, eventlog.ErrCorrupt) && !errors.Is(s.ap.err, replica.ErrForkTooDeep) {
				return s.ap.err
			}
			// A committed record fails its checksum, or the state cannot
			// follow a fork deeper than the compacted log: this replica
			// must not serve or lead, and restarting it would only fail
			// again. It stays up as a failed member that says why
			// (status, clients' errors) until an operator repairs it.
			s.logger.Error("the state cannot be brought in line with the log: this replica stops serving and leading; restart it with --repair",
				"err", s.ap.err)
			s.node.Fail(s.ap.err)
			s.corruptApplied = true
		case t := <-s.snaps.done:
			s.snapshotTaken(t)
		case req := <-s.snaps.metaReq:
			s.answerMeta(req)
		}
		// Take whatever else is already waiting, so that it shares this
		// iteration's fsync.
	drain:
		for range maxDrain {
			if took >= maxDrainBytes {
				break
			}
			select {
			case in := <-inbox:
				s.step(ctx, in)
				took += len(in.Msg)
			case p := <-s.propc:
				s.checkClock(&lastTick)
				s.propose(p)
			default:
				break drain
			}
		}
		for s.node.HasReady() {
			err := s.handleReady(ctx)
			if err == nil {
				if s.noSpaceWait > 0 {
					s.noSpaceWait = 0
					s.logger.Info("the disk takes writes again")
				}
				continue
			}
			if !IsNoSpace(err) {
				return err
			}
			if err := s.outOfSpace(ctx, err, &lastTick); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		s.afterIteration()
		s.maybeSnapshot(ctx)
		if s.snapshotsEnabled() {
			s.maybeCompact()
		}
		if s.pendingInstall != nil {
			s.installNow(ctx)
		}
	}
}

func (s *Shell) tick(now time.Time, last *time.Time) {
	gap := now.Sub(*last)
	if gap < 0 {
		// A tick that fired before checkClock's catch-up tick was taken.
		return
	}
	*last = now
	// A gap of more than two intervals means the loop was not running (or
	// the process was stopped): tell the core how many ticks it missed.
	if missed := int(gap/s.cfg.TickInterval) - 1; missed >= 1 && gap > 2*s.cfg.TickInterval {
		s.node.Paused(missed)
	}
	s.node.Tick()
	s.coreNow++
	s.ticks.put(s.coreNow, now)
	if s.diskCheckDue() {
		s.checkDisk()
	}
	s.ap.retryIfIdle()
}

// checkClock runs a tick at once if the ticker is late by more than two
// intervals (the process was stopped or starved), so that the core learns
// of the pause before the input that woke the loop is stepped.
func (s *Shell) checkClock(last *time.Time) {
	if now := time.Now(); now.Sub(*last) > 2*s.cfg.TickInterval {
		s.tick(now, last)
	}
}

func (s *Shell) step(ctx context.Context, in transport.Inbound) {
	if len(in.Msg) > 0 && in.Msg[0] == snapshotFrameMark {
		s.stepSnapshotFrame(ctx, in)
		return
	}
	m, err := replica.DecodeMessage(in.Msg)
	if err != nil {
		s.logger.Warn("undecodable message from peer", "peer", in.From, "err", err)
		return
	}
	if uint32(m.From) != uint32(in.From) {
		// The transport authenticated the connection as in.From: a message
		// claiming another sender is a bug or an attack.
		s.logger.Warn("message sender does not match its connection", "peer", in.From, "claims", m.From)
		return
	}
	if err := s.node.Step(m); err != nil && !errors.Is(err, replica.ErrStopped) {
		s.logger.Debug("step", "peer", in.From, "type", m.Type, "err", err)
	}
	if m.Type == replica.MsgAppendResp {
		s.sampleLag(m.From, in.Received)
	}
}

// sampleLag records a lag sample for each offset the acknowledgement just
// stepped raised peer's match over, stamped received: when the
// acknowledgement arrived, not when this busy loop got to it (zero: now).
// Our append of each such offset is durable already: the loop persists a
// Ready before it steps the next inputs (early Appends leave before our
// write, but their acknowledgements are stepped after it). An
// acknowledgement read while our own write was still running is stamped no
// earlier than that write's end, so a sample is never negative.
func (s *Shell) sampleLag(peer replica.NodeID, received time.Time) {
	match, primary := s.node.Match(peer)
	if !primary {
		return
	}
	// Only an advance observed while primary is a sample: a new primary's
	// first view of a peer's match covers records it appended as a backup,
	// whose "append time" is not the primary's.
	prev, known := s.match[peer]
	s.match[peer] = match
	if !known || match <= prev {
		return
	}
	now := time.Now().UnixNano()
	if !received.IsZero() {
		now = received.UnixNano()
	}
	for off := max(prev+1, match-eventlog.Offset(min(uint64(match), 4096))+1); off <= match; off++ {
		if at, ok := s.appended.get(off); ok {
			s.lag.add(uint32(peer), uint64(off), at, max(now, at))
		}
	}
}

func (s *Shell) propose(p *proposal) {
	last, err := s.node.Propose(p.recs)
	if err != nil {
		p.done <- proposalResult{err: err}
		return
	}
	s.ap.wait(last, p)
}

// handleReady carries out one Ready in the order of the core's contract.
func (s *Shell) handleReady(ctx context.Context) error {
	rd, ok := s.node.Ready()
	if !ok {
		return nil
	}
	// Early messages (the primary's Appends) leave before our own writes, so
	// that the backups persist them while we do.
	if err := s.send(rd.EarlyMessages); err != nil {
		return err
	}
	if rd.Truncate {
		// Before the log changes: the applier stops what it reads, and a
		// rollback of the state is recorded as due (see truncate).
		if err := s.prepareTruncate(rd.TruncateAfter); err != nil {
			return err
		}
	}
	// Everything else in the contract's order, as one batch where the log
	// can write one (one synced transaction: replica.Persist).
	if err := replica.Persist(s.log, rd); err != nil {
		return err
	}
	s.stable = rd.Stable
	s.ap.setStable(s.safeFromForks())
	if len(rd.Records) > 0 {
		now := time.Now().UnixNano()
		for _, r := range rd.Records {
			s.appended.put(r.Offset, now)
		}
	}
	if err := s.send(rd.Messages); err != nil {
		return err
	}
	for _, p := range offersOf(rd.Messages) {
		s.offerSnapshot(ctx, p)
	}
	// Applying is handed to the applier: records up to Commit are durable
	// here, and the applier applies them in order while the loop goes on
	// (unless held; see applyHeld).
	s.commit = rd.Commit
	if !s.applyHeld {
		s.ap.advance(rd.Commit)
	}
	s.node.Advance(rd)
	return nil
}

// send encodes msgs and hands them to the transport (best-effort).
func (s *Shell) send(msgs []replica.Message) error {
	for _, m := range msgs {
		b, err := replica.EncodeMessage(m)
		if err != nil {
			return fmt.Errorf("encode %v message: %w", m.Type, err)
		}
		s.tr.Send(transport.NodeID(m.To), b)
	}
	return nil
}

// prepareTruncate gets ready for a truncation of the log's suffix after
// `after` (into the rollback area), which the Ready's batch then performs.
// Proposals waiting there get ErrOutcomeUnknown (their records are
// re-submitted); if the state machine applied beyond `after` (a fork, only
// possible under partitions), the applier rolls it back on its own
// goroutine while this loop goes on; the requirement is made durable first
// (rollbackKey), so that a crash cannot leave the state ahead of a log that
// no longer holds what it applied.
func (s *Shell) prepareTruncate(after eventlog.Offset) error {
	s.forks.Add(1)
	// Snapshots of records being discarded describe a branch the cluster
	// no longer has: none may be installed on a backup or restored here.
	if err := s.dropSnapshotsAbove(after); err != nil {
		return err
	}
	if !s.ap.truncated(after) {
		return nil
	}
	if s.rollbackMarker == 0 || after+1 < s.rollbackMarker {
		if err := s.log.SetMeta(rollbackKey, encodeOffset(after+1)); err != nil {
			return fmt.Errorf("persist the state rollback to %d: %w", after, err)
		}
		s.rollbackMarker = after + 1
	}
	s.logger.Warn("log truncated below the applied state: the log forked; rolling the state back", "truncate_after", after)
	return nil
}

// encodeOffset and decodeOffset are the rollbackKey value: the offset plus
// one (so that 0, "rollback to nothing", is distinct from "none"), 8 bytes
// big-endian; an empty value means none.
func encodeOffset(off eventlog.Offset) []byte { return binary.BigEndian.AppendUint64(nil, uint64(off)) }

func decodeOffset(b []byte) (eventlog.Offset, error) {
	switch len(b) {
	case 0:
		return 0, nil
	case 8:
		return eventlog.Offset(binary.BigEndian.Uint64(b)), nil
	}
	return 0, fmt.Errorf("malformed %s value of %d bytes", rollbackKey, len(b))
}

// recoverState brings the applied offset in line with the log at start-up,
// and finds a rollback that a crash interrupted (rollbackKey).
func (s *Shell) recoverState() (eventlog.Offset, error) {
	applied, err := s.sm.Applied()
	if err != nil {
		return 0, fmt.Errorf("read applied offset: %w", err)
	}
	b, ok, err := s.log.Meta(rollbackKey)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", rollbackKey, err)
	}
	if ok {
		if s.rollbackMarker, err = decodeOffset(b); err != nil {
			return 0, err
		}
		if s.rollbackMarker != 0 {
			s.logger.Warn("a rollback of the state was interrupted; finishing it", "to", s.rollbackMarker-1, "applied", applied)
		}
	}
	if applied > s.log.Last() && s.rollbackMarker == 0 {
		// The state is ahead of the log, and no rollback explains it (a
		// truncation after a fork writes its marker first): the log lost
		// records that were committed and applied. Serving on would serve
		// a history with a hole, and replicating it would spread the loss:
		// refuse, and let the operator repair (fetch the log again).
		return 0, fmt.Errorf("%w: the state applied offset %d but the log ends at %d", ErrLogLost, applied, s.log.Last())
	}
	return applied, nil
}

// afterIteration fails proposals a primary can no longer finish, keeps the
// peers' matches that lag samples start from, and publishes the status.
func (s *Shell) afterIteration() {
	st := s.node.Status()
	if s.applyHeld = holdApply(st); !s.applyHeld {
		s.ap.advance(s.commit)
	}
	if st.Role != replica.RolePrimary && s.ap.hasWaiters() {
		// Their records are in this replica's log and may still commit:
		// "not primary" would tell the client they were not applied.
		s.ap.failAll(fmt.Errorf("%w: replica %s stepped down before its commit (primary now %s)",
			ErrOutcomeUnknown, st.ID, st.Primary))
	}
	if s.rollbackMarker != 0 && s.ap.takeRolledBack() {
		s.forks.Add(1)
		if err := s.log.SetMeta(rollbackKey, nil); err != nil {
			s.logger.Warn("clear the finished state rollback", "err", err)
		} else {
			s.rollbackMarker = 0
		}
	}
	if st.Role == replica.RolePrimary {
		// Start tracking peers (sampleLag samples advances from here on),
		// and follow changes made by other inputs (a fetch resets a
		// peer's match).
		for _, p := range st.Peers {
			s.match[p.ID] = p.Match
		}
		s.catchUp.observe(st, time.Now(), s.logger)
	} else {
		clear(s.match)
		s.catchUp.reset()
	}
	s.publish(st)
}

// holdApply reports whether the applier should wait: the replica is a
// backup that restarted (or paused) and has not rejoined the ISR yet.
func holdApply(st replica.Status) bool {
	return st.Role == replica.RoleBackup && st.Recovering && st.Err == nil
}

func (s *Shell) publishStatus() { s.publish(s.node.Status()) }

// NoTransport is the transport of a one-replica cluster: there is no one to
// talk to. Its inbox never delivers.
type NoTransport struct{}

// Send drops msg.
func (NoTransport) Send(transport.NodeID, []byte) bool { return false }

// Inbox returns a nil channel, which blocks forever in a select.
func (NoTransport) Inbox() <-chan transport.Inbound { return nil }
