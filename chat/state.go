package chat

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/replichat/replichat/eventlog"
)

// Limits of the domain.
const (
	// MaxNameLen is the longest user name, in bytes.
	MaxNameLen = 32
	// MaxBodyBytes is the longest message body, in bytes.
	MaxBodyBytes = 4096
	// MaxPasswordBytes is the longest password accepted by Register.
	MaxPasswordBytes = 1024
	// MaxUnread is the most messages a user's unread queue holds; a send
	// beyond it is a *QueueFullError.
	MaxUnread = 10000
	// MaxIDsPerCommand bounds the ids of one Deliver or DeleteMessages.
	MaxIDsPerCommand = 1000
	// DedupWindow is how many of a client's most recent request results are
	// kept at least; older seqs of that client may be answered with
	// ErrExpiredRequest.
	DedupWindow = 256
	// DedupIdleNanos is how long (by record Time) a client may stay silent
	// before its dedup entries are dropped: 7 days.
	DedupIdleNanos = int64(7 * 24 * 3600 * 1e9)
	// maxExpirePerRecord bounds the clients expired while applying one
	// record, so that one record's transaction stays small.
	maxExpirePerRecord = 16
	// purgePerRecord bounds the views of deleted accounts removed after
	// each record, for the same reason.
	purgePerRecord = 256
	// keysPerRecordHint is about how many keys applying a record reads or
	// writes (a send: ten, a few shared with other records of its batch),
	// to presize a transaction's cache.
	keysPerRecordHint = 8
)

// State is the chat state materialized in a Store. Apply, RollbackTo and
// RestoreSnapshot must be called by one goroutine at a time; queries and
// SetStable may run concurrently with them (each query runs in one read
// transaction). A State must be the only writer of its store: it keeps in
// memory what it learned of the dedup table (seqBounds), the values every
// request reads (committedCache) and the summary of its undo history.
type State struct {
	store Store
	// applied caches the "applied" key; it is updated only after the
	// transaction that wrote it committed.
	applied atomic.Uint64
	// loadErr is the error met reading the store in NewState, returned by
	// Apply until a successful RestoreSnapshot.
	loadErr atomic.Pointer[error]
	// seqs spares Apply the dedup read of new requests (see seqBounds).
	seqs seqBounds
	// committed spares Apply the reads of the keys every request reads
	// (see committedCache).
	committed committedCache

	// stable is the offset up to which every record is durable on every
	// replica (SetStable): batches ending at or below it record no undo.
	// Invariant: it only grows. stableSet is false until SetStable is
	// first called (or an undo history was found at start): until then no
	// undo is recorded at all, as in a State that only replays (chatreplay,
	// tests).
	stable    atomic.Uint64
	stableSet atomic.Bool
	// undo is the summary of the undo history; owned by the goroutine that
	// applies.
	undo undoState
	// undoLimits bound the undo history and the rollback transactions
	// (see undo.go). Undo records are local, so the bounds may differ
	// between replicas; tests lower them.
	undoLimits undoLimits
}

// NewState returns the state kept in store, resuming after the offset it
// last applied. If the store holds an incomplete snapshot restore, Applied
// reports 0 and Apply, Check and Digest return ErrIncompleteRestore. If it
// holds an incomplete rollback, LoadErr and Apply return an
// *IncompleteRollbackError until RollbackTo finishes it or a restore
// replaces the state; Applied reports where the rollback got to.
func NewState(store Store) *State {
	s := &State{store: store, undoLimits: defaultUndoLimits()}
	err := store.View(func(kv KV) error {
		if err := checkNotRestoring(kv); err != nil {
			return err
		}
		off, err := getU64(kv, keyApplied)
		if err != nil {
			return err
		}
		s.applied.Store(off)
		return s.loadUndo(kv)
	})
	if err != nil {
		err = fmt.Errorf("load chat state: %w", err)
		s.loadErr.Store(&err)
	}
	return s
}

// Applied is the offset of the last record applied (0 if none).
func (s *State) Applied() eventlog.Offset { return eventlog.Offset(s.applied.Load()) }

// LoadErr returns the error met reading the store when the State was created
// (ErrIncompleteRestore after an interrupted RestoreSnapshot, an
// *IncompleteRollbackError after an interrupted RollbackTo) or left by a
// RollbackTo that failed part way, or nil. It is the constant-time start-up
// check; Check is the full, O(state) one.
func (s *State) LoadErr() error {
	if p := s.loadErr.Load(); p != nil {
		return *p
	}
	return nil
}

func checkNotRestoring(kv KV) error {
	_, ok, err := kv.Get(keyRestoring)
	if err != nil {
		return err
	}
	if ok {
		return ErrIncompleteRestore
	}
	return nil
}

// Result is the outcome of one client request, stored for deduplication:
// a retry of the same (client id, seq) gets it back instead of a re-apply.
type Result struct {
	// Code is "" on success, else the error code (see Code).
	Code    string `msgpack:"code,omitempty"`
	Message string `msgpack:"msg,omitempty"`
	// UserID: the account created (register) or deleted (delete_account).
	UserID uint64 `msgpack:"uid,omitempty"`
	// MessageID and Time: the message sent (send).
	MessageID uint64 `msgpack:"mid,omitempty"`
	Time      int64  `msgpack:"time,omitempty"`
	// IDs: the messages marked delivered (deliver) or deleted.
	IDs []uint64 `msgpack:"ids,omitempty"`
}

// Err returns nil for a success, else an error whose text is the original
// message and which wraps the sentinel of Code.
func (r Result) Err() error {
	if r.Code == "" {
		return nil
	}
	sentinel := sentinelForCode(r.Code)
	if sentinel == nil {
		return errors.New(r.Message)
	}
	return &resultError{sentinel: sentinel, message: r.Message}
}

func failed(err error) Result { return Result{Code: Code(err), Message: err.Error()} }

// Apply applies recs in offset order. Records at or below Applied() are
// skipped; a record after a gap is a *GapError. Each batch is applied in
// one Update together with the applied offset (and, above the stable
// offset, its undo record: see RollbackTo), so a crash never applies a
// record twice or loses one; a batch too big for one transaction is split,
// down to one record per transaction.
//
// Applying is total: a chat event that is invalid against the current state
// only records an error Result for its (client id, seq). Apply returns an
// error only for a storage failure, a gap, or an undecodable chat payload
// (naming its offset); the state is then unchanged by the failed batch.
func (s *State) Apply(recs []eventlog.Record) error {
	return s.apply(recs, nil)
}

// Outcome is what applying one client record did.
type Outcome uint8

// Outcomes of a client record.
const (
	// OutcomeApplied: applied with success; the Result says what it did.
	OutcomeApplied Outcome = iota + 1
	// OutcomeRejected: applied as a rejection (invalid against the state
	// it met, e.g. its recipient was deleted meanwhile): the Result carries
	// the domain error's Code and Message.
	OutcomeRejected
	// OutcomeDuplicate: skipped, the request had been applied already
	// (its result is in the dedup table or was evicted from it; or, for a
	// re-submitted send with Unknown set, its message is stored).
	OutcomeDuplicate
	// OutcomeExpired: skipped, never applied: a live request (not a
	// re-submission) whose seq lies where the dedup table forgot what was
	// applied (at or below its client's HoleFloor). Its client is answered
	// ErrExpiredRequest.
	OutcomeExpired
	// OutcomeSkipped: a client id longer than MaxClientIDLen, which the
	// dedup table cannot hold; the record only advanced the offset.
	OutcomeSkipped
)

var outcomeNames = [...]string{OutcomeApplied: "applied", OutcomeRejected: "rejected",
	OutcomeDuplicate: "duplicate", OutcomeExpired: "expired", OutcomeSkipped: "skipped"}

// String returns the outcome's name ("applied", "duplicate", ...).
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) && outcomeNames[o] != "" {
		return outcomeNames[o]
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// AppliedResult is the outcome of one client record, as Apply met it.
type AppliedResult struct {
	Offset   eventlog.Offset
	ClientID string
	Seq      uint64
	Outcome  Outcome
	// Result is what the request's client is answered, for OutcomeApplied
	// and OutcomeRejected; zero otherwise. It is what Result returns for
	// the request afterwards when the request was above its client's
	// window; a request applied below it (in a hole, or with Unknown) has
	// its result only here.
	Result Result
	// Unknown: the dedup table could not tell whether the request had
	// been applied before (its seq is at or below its client's HoleFloor).
	// A re-submission is applied then, unless it is a send whose message is
	// stored (OutcomeDuplicate): it may be applied twice.
	Unknown bool
	// Resubmitted, OrigEpoch and OrigOffset are the record's: whether it
	// is a re-submission of a record truncated after a fork, and where the
	// truncated copy was (eventlog.Record.Resubmitted).
	Resubmitted bool
	OrigEpoch   eventlog.Epoch
	OrigOffset  eventlog.Offset
}

func newAppliedResult(rec eventlog.Record, o Outcome, res Result, unknown bool) AppliedResult {
	return AppliedResult{Offset: rec.Offset, ClientID: rec.ClientID, Seq: rec.Seq, Outcome: o, Result: res,
		Unknown: unknown, Resubmitted: rec.Resubmitted(), OrigEpoch: rec.OrigEpoch, OrigOffset: rec.OrigOffset}
}

// ApplyWithResults is Apply that also returns the outcome of every client
// record it met (chat records with a client id, above Applied()), in offset
// order: applied or rejected with the Result it stored, skipped as a
// duplicate or as expired, or skipped for its client id. On an error, it
// returns the outcomes of the transactions that committed before it (when
// a big batch was split).
func (s *State) ApplyWithResults(recs []eventlog.Record) ([]AppliedResult, error) {
	var results []AppliedResult
	err := s.apply(recs, &results)
	return results, err
}

// apply is Apply, appending the outcomes to *results when it is not nil.
func (s *State) apply(recs []eventlog.Record, results *[]AppliedResult) error {
	if p := s.loadErr.Load(); p != nil {
		return *p
	}
	if len(recs) == 0 {
		return nil
	}
	// Undo is recorded for a batch that may yet be truncated: one ending
	// above the stable offset (read once: SetStable may raise it meanwhile,
	// which only makes the record unneeded).
	stable := s.stable.Load()
	recordUndo := s.stableSet.Load() && uint64(recs[len(recs)-1].Offset) > stable
	var (
		last  uint64
		batch []AppliedResult
		meta  undoMeta
	)
	var sink *[]AppliedResult
	if results != nil {
		sink = &batch
	}
	var (
		seqs  *txnSeqs
		cache *cachedKV
	)
	err := s.store.Update(func(kv KV) error {
		batch = batch[:0] // in case a store runs fn more than once
		seqs = newTxnSeqs(&s.seqs)
		cache = newCachedKV(kv, &s.committed, keysPerRecordHint*len(recs))
		cache.recordUndo = recordUndo
		// Before the batch writes anything: what to drop of the undo
		// history is found by a scan, which on Badger sorts the
		// transaction's pending writes.
		u, err := s.beginUndo(kv, stable, recordUndo)
		if err != nil {
			return err
		}
		var start uint64
		if start, last, err = applyBatch(cache, seqs, recs, sink); err != nil {
			return err
		}
		if err := cache.flush(); err != nil {
			return err
		}
		meta, err = u.finish(kv, cache, start, last)
		return err
	})
	if err != nil {
		// The commit may have happened or not: the caches cannot tell.
		s.committed.reset()
		s.undo.forget()
	}
	if errors.Is(err, ErrTxnTooBig) && len(recs) > 1 {
		half := len(recs) / 2
		if err := s.apply(recs[:half], results); err != nil {
			return err
		}
		return s.apply(recs[half:], results)
	}
	if err != nil {
		return fmt.Errorf("apply records %d-%d: %w", recs[0].Offset, recs[len(recs)-1].Offset, err)
	}
	s.seqs.merge(seqs.txn)
	s.committed.merge(cache)
	s.undo.set(meta)
	if results != nil {
		*results = append(*results, batch...)
	}
	s.applied.Store(last)
	return nil
}

// applyBatch applies recs in one transaction, appending the outcomes of
// client records to *results unless results is nil. It returns the applied
// offset before and after.
func applyBatch(kv KV, seqs *txnSeqs, recs []eventlog.Record, results *[]AppliedResult) (start, applied uint64, err error) {
	if err := checkNotRestoring(kv); err != nil {
		return 0, 0, err
	}
	if applied, err = getU64(kv, keyApplied); err != nil {
		return 0, 0, err
	}
	start = applied
	for _, rec := range recs {
		off := uint64(rec.Offset)
		if off <= applied {
			continue
		}
		if off != applied+1 {
			return 0, 0, &GapError{Applied: applied, Got: off}
		}
		if err := applyRecord(kv, seqs, rec, results); err != nil {
			return 0, 0, fmt.Errorf("apply offset %d: %w", off, err)
		}
		if err := purgeStep(kv, purgePerRecord); err != nil {
			return 0, 0, fmt.Errorf("purge deleted accounts at offset %d: %w", off, err)
		}
		applied = off
	}
	if applied != start {
		if err := putU64(kv, keyApplied, applied); err != nil {
			return 0, 0, err
		}
	}
	return start, applied, nil
}

// applyRecord applies one record. A client record goes by what the dedup
// table knows of its request (dedup.go): new or in a hole, it is applied;
// a duplicate is skipped; where the table forgot, a live request is skipped
// as expired and a re-submission is applied, unless it is a send whose
// message is stored.
//
// A skipped record changes nothing but the clock: expiry waits for the
// next applied one, as it always has (replaying an old log must give the
// state it gave).
func applyRecord(kv KV, seqs *txnSeqs, rec eventlog.Record, results *[]AppliedResult) error {
	report := func(o Outcome, res Result, unknown bool) {
		if results != nil {
			*results = append(*results, newAppliedResult(rec, o, res, unknown))
		}
	}
	if !strings.HasPrefix(rec.Type, TypePrefix) {
		return nil // a protocol event of the replica layer
	}
	if len(rec.ClientID) > MaxClientIDLen {
		report(OutcomeSkipped, Result{}, false)
		return nil // cannot be deduplicated; the server never decides one
	}
	ev, err := DecodeEvent(rec.Type, rec.Data)
	if err != nil {
		return fmt.Errorf("undecodable %s event at offset %d: %w", rec.Type, rec.Offset, err)
	}
	clock, err := advanceClock(kv, rec.Time)
	if err != nil {
		return err
	}
	verdict, h := verdictNew, hole{}
	if rec.ClientID != "" {
		if verdict, h, err = checkDedup(kv, seqs, rec.ClientID, rec.Seq); err != nil {
			return err
		}
		switch {
		case verdict == verdictDuplicate:
			report(OutcomeDuplicate, Result{}, false)
			return nil
		case verdict == verdictUnknown && !rec.Resubmitted():
			report(OutcomeExpired, Result{}, true)
			return nil
		case verdict == verdictUnknown:
			if send, ok := ev.(*SendEvent); ok {
				dup, err := sendApplied(kv, send)
				if err != nil {
					return err
				}
				if dup {
					report(OutcomeDuplicate, Result{}, true)
					return nil
				}
			}
		}
	}
	res, err := applyEvent(kv, rec, ev)
	if err != nil {
		return err
	}
	if rec.ClientID != "" {
		if err := recordApplied(kv, rec.ClientID, rec.Seq, clock, res, verdict, h); err != nil {
			return err
		}
		seqs.raise(rec.ClientID, rec.Seq)
		o := OutcomeApplied
		if res.Code != "" {
			o = OutcomeRejected
		}
		report(o, res, verdict == verdictUnknown)
	}
	return expireClients(kv, clock)
}

func applyEvent(kv KV, rec eventlog.Record, ev Event) (Result, error) {
	var (
		res Result
		err error
	)
	switch ev := ev.(type) {
	case *RegisterEvent:
		res, err = applyRegister(kv, rec, ev)
	case *SendEvent:
		res, err = applySend(kv, rec, ev)
	case *DeliverEvent:
		res, err = applyDeliver(kv, ev)
	case *DeleteMessagesEvent:
		res, err = applyDeleteMessages(kv, ev)
	case *DeleteAccountEvent:
		res, err = applyDeleteAccount(kv, ev)
	default:
		return Result{}, fmt.Errorf("apply %T: no handler", ev)
	}
	// A domain error is a rejected request, recorded as its result; any
	// other error is a storage failure that aborts the batch.
	if err != nil && Code(err) != CodeInternal {
		return failed(err), nil
	}
	return res, err
}
