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

// State is the chat state materialized in a Store. Apply must be called by
// one goroutine at a time; queries may run concurrently with it (each runs in
// one read transaction). A State must be the only writer of its store: it
// keeps in memory what it learned of the dedup table (seqBounds) and the
// values every request reads (committedCache).
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
}

// NewState returns the state kept in store, resuming after the offset it
// last applied. If the store holds an incomplete snapshot restore, Applied
// reports 0 and Apply, Check and Digest return ErrIncompleteRestore.
func NewState(store Store) *State {
	s := &State{store: store}
	err := store.View(func(kv KV) error {
		if err := checkNotRestoring(kv); err != nil {
			return err
		}
		off, err := getU64(kv, keyApplied)
		s.applied.Store(off)
		return err
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
// (ErrIncompleteRestore after an interrupted RestoreSnapshot), or nil. It is
// the constant-time start-up check; Check is the full, O(state) one.
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
// one Update together with the applied offset, so a crash never applies a
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

// AppliedResult is the outcome of one client request, as Apply stored it in
// the dedup table.
type AppliedResult struct {
	ClientID string
	Seq      uint64
	Result   Result
}

// ApplyWithResults is Apply that also returns the results it stored, in
// offset order: what Result would now return for each request applied. A
// record skipped as a duplicate (or expired) request stores none. On an
// error, it returns the results of the transactions that committed before
// it (when a big batch was split).
func (s *State) ApplyWithResults(recs []eventlog.Record) ([]AppliedResult, error) {
	var results []AppliedResult
	err := s.apply(recs, &results)
	return results, err
}

// apply is Apply, appending the stored results to *results when it is not
// nil.
func (s *State) apply(recs []eventlog.Record, results *[]AppliedResult) error {
	if p := s.loadErr.Load(); p != nil {
		return *p
	}
	if len(recs) == 0 {
		return nil
	}
	var (
		last  uint64
		batch []AppliedResult
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
		var err error
		if last, err = applyBatch(cache, seqs, recs, sink); err != nil {
			return err
		}
		return cache.flush()
	})
	if err != nil {
		// The commit may have happened or not: the cache cannot tell.
		s.committed.reset()
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
	if results != nil {
		*results = append(*results, batch...)
	}
	s.applied.Store(last)
	return nil
}

// applyBatch applies recs in one transaction, appending the results it
// stores to *results unless results is nil.
func applyBatch(kv KV, seqs *txnSeqs, recs []eventlog.Record, results *[]AppliedResult) (uint64, error) {
	if err := checkNotRestoring(kv); err != nil {
		return 0, err
	}
	applied, err := getU64(kv, keyApplied)
	if err != nil {
		return 0, err
	}
	start := applied
	for _, rec := range recs {
		off := uint64(rec.Offset)
		if off <= applied {
			continue
		}
		if off != applied+1 {
			return 0, &GapError{Applied: applied, Got: off}
		}
		if err := applyRecord(kv, seqs, rec, results); err != nil {
			return 0, fmt.Errorf("apply offset %d: %w", off, err)
		}
		if err := purgeStep(kv, purgePerRecord); err != nil {
			return 0, fmt.Errorf("purge deleted accounts at offset %d: %w", off, err)
		}
		applied = off
	}
	if applied != start {
		if err := putU64(kv, keyApplied, applied); err != nil {
			return 0, err
		}
	}
	return applied, nil
}

func applyRecord(kv KV, seqs *txnSeqs, rec eventlog.Record, results *[]AppliedResult) error {
	if !strings.HasPrefix(rec.Type, TypePrefix) {
		return nil // a protocol event of the replica layer
	}
	if len(rec.ClientID) > MaxClientIDLen {
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
	if rec.ClientID != "" {
		done, err := isDuplicate(kv, seqs, rec.ClientID, rec.Seq)
		if err != nil || done {
			return err
		}
	}
	res, err := applyEvent(kv, rec, ev)
	if err != nil {
		return err
	}
	if rec.ClientID != "" {
		if err := storeResult(kv, rec.ClientID, rec.Seq, clock, res); err != nil {
			return err
		}
		seqs.raise(rec.ClientID, rec.Seq)
		if results != nil {
			*results = append(*results, AppliedResult{ClientID: rec.ClientID, Seq: rec.Seq, Result: res})
		}
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
