package shell

import (
	"context"
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

// Transport carries encoded core messages between replicas. Sends may be
// lost; the protocol retries.
type Transport interface {
	Send(to transport.NodeID, msg []byte) bool
	Inbox() <-chan transport.Inbound
}

// Errors of Propose.
var (
	// ErrStopped: the shell is not running (any more).
	ErrStopped = errors.New("shell: stopped")
	// ErrLost: the proposal's offset was taken by another record after a
	// failover or truncation; it was not applied here. Retry on the primary.
	ErrLost = errors.New("shell: proposal lost to a failover")
)

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
	Logger     *slog.Logger
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
		logger:  cfg.Logger,
		propc:   make(chan *proposal, 1024),
		forcec:  make(chan chan error),
		stopped: make(chan struct{}),
		match:   make(map[replica.NodeID]eventlog.Offset),
	}
	s.lag.init(cfg.LagSamples)
	s.appended.init(cfg.LagSamples)
	s.status.Store(&Status{ID: cfg.Node.ID, Role: "backup", Waiting: "starting"})
	return s, nil
}

// Propose replicates recs and returns once the last of them is committed
// and applied, with its offset. It fails with an error wrapping
// replica.ErrNotPrimary (or another core error), ErrLost, ErrStopped or
// ctx's error.
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
	applied, err := s.recoverState()
	if err != nil {
		return err
	}
	s.ap = newApplier(s.log, s.sm, applied)
	go s.ap.run()
	defer func() {
		s.ap.close()
		s.ap.failAll(ErrStopped)
	}()
	node, err := replica.NewNode(s.cfg.Node, s.log)
	if err != nil {
		return fmt.Errorf("start replication core: %w", err)
	}
	s.node = node
	s.applyHeld = holdApply(node.Status())
	s.publishStatus()
	interval := s.cfg.TickInterval
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	lastTick := time.Now()
	inbox := s.tr.Inbox()
	for {
		took := 0 // peer message bytes taken this iteration
		select {
		case <-ctx.Done():
			return nil
		case now := <-ticker.C:
			s.tick(now, &lastTick)
		case in := <-inbox:
			s.step(in)
			took = len(in.Msg)
		case p := <-s.propc:
			s.propose(p)
		case reply := <-s.forcec:
			reply <- s.node.ForceLead()
		case <-s.ap.failed:
			return s.ap.err
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
				s.step(in)
				took += len(in.Msg)
			case p := <-s.propc:
				s.propose(p)
			default:
				break drain
			}
		}
		for s.node.HasReady() {
			if err := s.handleReady(); err != nil {
				return err
			}
		}
		s.afterIteration()
	}
}

func (s *Shell) tick(now time.Time, last *time.Time) {
	gap := now.Sub(*last)
	*last = now
	// A gap of more than two intervals means the loop was not running (or
	// the process was stopped): tell the core how many ticks it missed.
	if missed := int(gap/s.cfg.TickInterval) - 1; missed >= 1 && gap > 2*s.cfg.TickInterval {
		s.node.Paused(missed)
	}
	s.node.Tick()
}

func (s *Shell) step(in transport.Inbound) {
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
func (s *Shell) handleReady() error {
	rd, ok := s.node.Ready()
	if !ok {
		return nil
	}
	// Early messages (the primary's Appends) leave before our own writes, so
	// that the backups persist them while we do.
	if err := s.send(rd.EarlyMessages); err != nil {
		return err
	}
	if rd.HardState != nil {
		b, err := replica.EncodeHardState(*rd.HardState)
		if err != nil {
			return fmt.Errorf("encode hard state: %w", err)
		}
		if err := s.log.SetMeta(replica.HardStateKey, b); err != nil {
			return fmt.Errorf("persist hard state: %w", err)
		}
	}
	if rd.Truncate {
		if err := s.truncate(rd.TruncateAfter); err != nil {
			return err
		}
	}
	if rd.ISRIndex != nil {
		b, err := replica.EncodeISRIndex(*rd.ISRIndex)
		if err != nil {
			return fmt.Errorf("encode isr index: %w", err)
		}
		if err := s.log.SetMeta(replica.ISRIndexKey, b); err != nil {
			return fmt.Errorf("persist isr index: %w", err)
		}
	}
	if len(rd.Records) > 0 {
		if err := s.log.Append(rd.Records); err != nil {
			return fmt.Errorf("append offsets %d-%d: %w", rd.Records[0].Offset, rd.Records[len(rd.Records)-1].Offset, err)
		}
		now := time.Now().UnixNano()
		for _, r := range rd.Records {
			s.appended.put(r.Offset, now)
		}
	}
	for _, e := range rd.Epochs {
		if err := s.log.AddEpoch(e); err != nil {
			return fmt.Errorf("add epoch %d at %d: %w", e.Epoch, e.Start, err)
		}
	}
	if rd.DiscardRolledBack > 0 {
		if err := s.log.DiscardRolledBack(rd.DiscardRolledBack); err != nil {
			return fmt.Errorf("discard %d rolled-back records: %w", rd.DiscardRolledBack, err)
		}
	}
	if err := s.send(rd.Messages); err != nil {
		return err
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

// truncate removes the log's suffix after `after` (into the rollback area).
// Proposals waiting there will never apply; if the state machine applied
// beyond it (a fork, only possible under partitions), it is rebuilt.
func (s *Shell) truncate(after eventlog.Offset) error {
	if err := s.log.Truncate(after); err != nil {
		return fmt.Errorf("truncate after %d: %w", after, err)
	}
	reset, err := s.ap.truncated(after)
	if err != nil {
		return err
	}
	if reset {
		s.logger.Warn("log truncated below the applied state; rebuilt the state from the log", "truncate_after", after)
	}
	return nil
}

// recoverState brings the applied offset in line with the log at start-up.
func (s *Shell) recoverState() (eventlog.Offset, error) {
	applied, err := s.sm.Applied()
	if err != nil {
		return 0, fmt.Errorf("read applied offset: %w", err)
	}
	if applied > s.log.Last() {
		// The state is ahead of the log: only possible if the log lost a
		// suffix the state had applied. Rebuild rather than serve a state
		// the log cannot explain.
		s.logger.Warn("state applied beyond the log end; rebuilding it from the log", "applied", applied, "log_end", s.log.Last())
		if err := s.sm.Reset(); err != nil {
			return 0, fmt.Errorf("reset state machine: %w", err)
		}
		applied = 0
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
		s.ap.failAll(&replica.NotPrimaryError{Primary: st.Primary})
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
