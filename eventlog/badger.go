package eventlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/replichat/replichat/eventlog/badgerdb"
	"github.com/vmihailenco/msgpack/v5"
)

// BadgerOptions configures OpenBadger. The zero value is a read-write log with
// small memory settings and no logging.
type BadgerOptions struct {
	// ReadOnly opens the log for reading only (the offline replay tool). It
	// takes a shared lock: it fails with ErrLocked while a read-write process
	// holds the directory, and keeps one from opening it meanwhile. Every
	// write returns ErrReadOnly.
	//
	// Badger cannot open read-only a directory whose writer crashed (its
	// write-ahead log must be truncated first: ErrTruncateNeeded). Then
	// OpenBadger first recovers the directory with a brief read-write open,
	// exactly what the writer would do at its next start, logs a warning,
	// and opens it read-only again. That recovery writes to the directory.
	ReadOnly bool
	// Logger receives Badger's warnings and errors, and eventlog's own
	// recovery messages. Nil discards them.
	Logger *slog.Logger
	// MemTableSize is Badger's memtable size in bytes; 0 means 16 MiB. It
	// bounds both memory and the write-ahead log replayed at open (so the
	// open time), and sets the largest transaction (15% of it). Records
	// above 1 MiB go to Badger's value log and count little towards it.
	MemTableSize int64
	// BlockCacheSize is Badger's block cache in bytes; 0 means 16 MiB.
	BlockCacheSize int64
	// ObserveSync, if set, is called with the duration of each synced
	// Badger commit that succeeded and appended records: one per
	// transaction of an Append (one bigger than a transaction makes
	// several), and one per transaction of a Write that holds records (a
	// Write without records, like SetMeta or AddEpoch, is not observed).
	// It is called on the writing goroutine, with the writer lock held: it
	// must be cheap and must not block (a metrics histogram). Nil observes
	// nothing.
	ObserveSync func(time.Duration)
}

// BadgerLog is a Log stored in a Badger database, one per replica. It owns the
// key prefixes listed by KeyPrefixes. chatd keeps the chat state in a separate
// database that is not fsynced (chat/chatdb): the state is derived from this
// log and replayed from it after a crash, so only the log pays for fsync.
//
// # Durability
//
// The database is opened with SyncWrites: every committed Badger transaction,
// ours or another package's, is fsynced before Commit returns. We verified in
// badger v4.9.6 that the alternative (SyncWrites off plus DB.Sync after each
// of our writes) is not enough when other packages write to the same
// database: DB.Sync msyncs only the active memtable's write-ahead log and the
// current value-log file. If another writer's transaction fills the memtable
// between our commit and our Sync, Badger rotates it (ensureRoomForWrite) and
// our records sit in an immutable memtable whose log is never synced (it is
// flushed to a table later); value-log rotation likewise does not sync the old
// file (logFile.doneWriting syncs only under SyncWrites). Power loss in that
// window would lose acknowledged records. With SyncWrites, Badger syncs the
// very memtable it just wrote (writeToLSM) and the old value-log file on
// rotation, and its write loop batches concurrent commits into one sync. The
// cost is one fsync per chat-state transaction too: apply a whole committed
// batch in one transaction.
//
// # Atomicity
//
// Every operation that fits one Badger transaction is one transaction. That
// includes Write (BatchWriter): a whole Batch (meta values, a truncation,
// records, epoch entries and a discard) that fits is one synced
// transaction, all or nothing after a crash. Bigger ones (Badger bounds a
// transaction at 15% of the memtable) are split:
//   - Append writes its records in offset order, one synced transaction after
//     another: a crash leaves a prefix of the batch, which is a valid log
//     whose extra records nobody was told about.
//   - Write makes its changes in the batch's order, committing when the next
//     one does not fit: a crash leaves the state after a prefix of its steps
//     (and of its records). The epoch history is written after the last
//     record, since an entry may start at the offset after it. See Write.
//   - Compact and Restore write the new m/base first: records at or below it
//     are invisible from then on, and a later open deletes any left over.
//     Compact writes nothing else: the keys below the base go with later
//     writes and at Purge (see swept).
//   - DiscardRolledBack writes m/rbfirst first, likewise.
//   - Truncate and Restore write m/pending with the new end of the log (and
//     the rollback sequence) first: records above it are invisible, and the
//     writer, or the next read-write open after a crash, moves them to the
//     rollback area (or deletes them) before removing the marker. Record
//     After+1+i always goes to rollback sequence Seq+i, so finishing twice
//     is harmless.
//
// A read-only open cannot finish that work; it hides what m/pending and
// m/base make invisible, and its rollback area may miss the records of an
// unfinished Truncate.
//
// # Concurrency
//
// Writers are serialized by wmu. Readers share mu; the operations that
// remove records (Truncate, Compact, Restore, DiscardRolledBack, and a Write
// that truncates or discards) hold mu exclusively while they commit, so a
// reader never pairs old bounds with a newer database state in which
// records it expects are gone.
type BadgerLog struct {
	db       *badger.DB
	dir      string
	logger   *slog.Logger
	readOnly bool
	// observeSync is BadgerOptions.ObserveSync (nil: none).
	observeSync func(time.Duration)

	// wmu serializes writers. Fields below are written only while holding
	// both wmu and mu, so a writer holding wmu may read them without mu.
	wmu sync.Mutex
	mu  sync.RWMutex
	// Invariant: first == base.Offset+1 and first <= last+1.
	first     Offset
	last      Offset
	lastEpoch Epoch
	baseEpoch Epoch
	epochs    []EpochStart
	// The rollback area holds sequences [rbFirst, rbNext).
	rbFirst, rbNext uint64
	// swept: the record keys at or below it are deleted from the database
	// (guarded by wmu alone: no reader looks below first). Invariant:
	// swept <= first-1. Compact only moves the base; the keys between
	// swept and the base go a few at a time with later writes (sweepSome)
	// and the rest at Purge, so that compacting 100k records does not
	// stall appends and readers for a second (see Compact).
	swept  Offset
	closed bool
	// tail caches the encodings of the last records appended (see tail).
	tail tail
	// changed is closed and replaced whenever last grows or the log closes.
	changed chan struct{}
}

var (
	_ Log         = (*BadgerLog)(nil)
	_ BatchWriter = (*BadgerLog)(nil)
)

// OpenBadger opens (creating if needed, unless read-only) the log in dir and
// recovers its state: the last offset by a reverse seek, so in time that
// does not depend on the log's length; the epoch history, first offset and
// rollback area from their keys. It finishes, in read-write mode, any
// operation a crash interrupted. It checks that the first and last records
// decode and that First() <= Last()+1, and fails clearly otherwise.
//
// A directory held by another process gives an error wrapping ErrLocked.
func OpenBadger(dir string, opts BadgerOptions) (*BadgerLog, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mode := "read-write"
	if opts.ReadOnly {
		mode = "read-only"
		// Badger would create a missing directory's lock file and fail
		// obscurely; say what is wrong instead.
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("open eventlog %s %s: %w", dir, mode, err)
		}
	}
	db, err := openDB(badgerOptions(dir, opts, logger))
	if errors.Is(err, badgerdb.ErrUnclean) {
		// Recover the directory as a restarted server would, then read it.
		// A live writer's lock makes that fail with ErrLocked, as the
		// read-only open would have.
		logger.Warn("eventlog: the writer did not close the log; recovering it read-write before reading", "dir", dir)
		rw := opts
		rw.ReadOnly = false
		l, rerr := OpenBadger(dir, rw)
		if errors.Is(rerr, ErrLocked) {
			// A live writer, caught between creating a file and sizing it.
			return nil, rerr
		}
		if rerr != nil {
			return nil, fmt.Errorf("open eventlog %s %s: recover after unclean shutdown: %w", dir, mode, rerr)
		}
		if rerr := l.Close(); rerr != nil {
			return nil, fmt.Errorf("open eventlog %s %s: recover after unclean shutdown: %w", dir, mode, rerr)
		}
		db, err = openDB(badgerOptions(dir, opts, logger))
	}
	if err != nil {
		return nil, fmt.Errorf("open eventlog %s %s: %w", dir, mode, err)
	}
	l := &BadgerLog{
		db:          db,
		dir:         dir,
		logger:      logger,
		readOnly:    opts.ReadOnly,
		observeSync: opts.ObserveSync,
		changed:     make(chan struct{}),
	}
	if err := l.recover(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open eventlog %s %s: %w", dir, mode, err)
	}
	logger.Debug("eventlog opened", "dir", dir, "first", l.first, "last", l.last, "epoch", l.lastEpoch)
	return l, nil
}

// badgerOptions are the shared small-footprint settings with SyncWrites: see
// "Durability" on BadgerLog.
func badgerOptions(dir string, opts BadgerOptions, logger *slog.Logger) badger.Options {
	return badgerdb.Options(badgerdb.Config{Dir: dir, ReadOnly: opts.ReadOnly, SyncWrites: true,
		MemTableSize: opts.MemTableSize, BlockCacheSize: opts.BlockCacheSize, Logger: logger})
}

// openDB opens Badger; a directory held by another process wraps ErrLocked.
func openDB(o badger.Options) (*badger.DB, error) {
	db, err := badgerdb.Open(o)
	if errors.Is(err, badgerdb.ErrLocked) {
		return nil, fmt.Errorf("%w: %w", ErrLocked, err)
	}
	return db, err
}

// DB returns the underlying database, for tests and tools that inspect or
// damage it on purpose, or that keep data beside the log under their own key
// prefix (never one of KeyPrefixes). Its transactions are synced on commit
// (see "Durability" on BadgerLog). It must not be used after Close.
func (l *BadgerLog) DB() *badger.DB { return l.db }

// recover loads the persisted state, finishing interrupted operations when
// the log is writable, and validates it.
func (l *BadgerLog) recover() error {
	b, p, err := l.loadMeta()
	if err != nil {
		return fmt.Errorf("load metadata: %w", err)
	}
	l.first, l.baseEpoch = b.Offset+1, b.Epoch
	l.swept = b.Offset
	if !l.readOnly {
		if err := l.repair(p); err != nil {
			return err
		}
		p = nil
	}
	if err := l.findEnd(b, p); err != nil {
		return err
	}
	rbLast, ok, err := l.lastSeq(prefixRollback)
	if err != nil {
		return fmt.Errorf("find last rollback record: %w", err)
	}
	l.rbNext = l.rbFirst
	if ok && rbLast+1 > l.rbNext {
		l.rbNext = rbLast + 1
	}
	return nil
}

// loadMeta reads the base, the epoch history, rbFirst and any pending marker.
func (l *BadgerLog) loadMeta() (base, *pending, error) {
	var b base
	var p *pending
	err := l.db.View(func(txn *badger.Txn) error {
		if _, err := getMsgpack(txn, keyBase, &b); err != nil {
			return err
		}
		if _, err := getMsgpack(txn, keyEpochs, &l.epochs); err != nil {
			return err
		}
		var pp pending
		if ok, err := getMsgpack(txn, keyPending, &pp); err != nil {
			return err
		} else if ok {
			p = &pp
		}
		_, err := getMsgpack(txn, keyRBFirst, &l.rbFirst)
		return err
	})
	return b, p, err
}

// repair finishes what a crash interrupted: a pending truncation, and the
// deletion of records and rollback records made invisible by m/base and
// m/rbfirst. Each check costs one seek when there is nothing to do.
func (l *BadgerLog) repair(p *pending) error {
	if p != nil {
		l.logger.Warn("eventlog: finishing an interrupted truncation", "after", p.After, "rollback", p.Rollback)
		c := newChunker(l.db)
		err := l.finishPending(c, *p)
		c.discard()
		if err != nil {
			return fmt.Errorf("finish interrupted truncation after %d: %w", p.After, err)
		}
	}
	if err := l.deleteBelow(prefixRecord, uint64(l.first)); err != nil {
		return fmt.Errorf("delete compacted records: %w", err)
	}
	if err := l.deleteBelow(prefixRollback, l.rbFirst); err != nil {
		return fmt.Errorf("delete discarded rollback records: %w", err)
	}
	return nil
}

// findEnd sets last and lastEpoch: the greatest record key (by one reverse
// seek, whatever the log's length), hidden above an unfinished truncation p
// (read-only mode), and never below the base, so First() <= Last()+1 holds
// by construction. Then it checks that the first and last records exist and
// decode, so that a damaged log fails here rather than in the middle of a
// replay.
func (l *BadgerLog) findEnd(b base, p *pending) error {
	lastKey, ok, err := l.lastSeq(prefixRecord)
	if err != nil {
		return fmt.Errorf("find last record: %w", err)
	}
	l.last = b.Offset
	if ok {
		l.last = max(Offset(lastKey), b.Offset)
	}
	if p != nil {
		l.last = max(min(l.last, p.After), b.Offset)
	}
	l.lastEpoch = b.Epoch
	if l.last < l.first {
		return nil
	}
	if _, err := l.get(l.first); err != nil {
		return fmt.Errorf("check first record: %w", err)
	}
	r, err := l.get(l.last)
	if err != nil {
		return fmt.Errorf("check last record: %w", err)
	}
	l.lastEpoch = r.Epoch
	return nil
}

// lastSeq returns the number of the greatest key under prefix.
func (l *BadgerLog) lastSeq(prefix string) (uint64, bool, error) {
	var n uint64
	var found bool
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: []byte(prefix)})
		defer it.Close()
		it.Seek(seqKey(prefix, math.MaxUint64))
		if !it.Valid() {
			return nil
		}
		var err error
		n, err = parseSeqKey(prefix, it.Item().Key())
		found = err == nil
		return err
	})
	return n, found, err
}

// get reads and decodes the record at off.
func (l *BadgerLog) get(off Offset) (Record, error) {
	var r Record
	err := l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(recordKey(off))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return &CorruptError{Offset: off, Reason: "missing"}
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("read offset %d: %w", off, err)
		}
		r, err = DecodeRecord(off, v)
		return err
	})
	return r, err
}

// getMsgpack decodes the value of key into v; ok is false if key is absent.
func getMsgpack(txn *badger.Txn, key string, v any) (ok bool, err error) {
	item, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get %s: %w", key, err)
	}
	err = item.Value(func(b []byte) error { return msgpack.Unmarshal(b, v) })
	if err != nil {
		return false, fmt.Errorf("decode %s: %w: %w", key, ErrCorrupt, err)
	}
	return true, nil
}

func mustMarshal(v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		// Only fixed, map-free metadata types are marshalled here.
		panic(fmt.Sprintf("eventlog: marshal %T: %v", v, err))
	}
	return b
}

// chunker writes a sequence of changes in as few transactions as Badger
// allows, committing (and so syncing) one before starting the next when a
// change does not fit. Callers order changes so that every prefix that may
// be committed alone leaves a valid log.
type chunker struct {
	db  *badger.DB
	txn *badger.Txn
	// inTxn counts changes in txn; committed counts changes committed.
	// Their sum is the number of changes made so far, so a caller that
	// notes it before a change knows, from committed alone, whether that
	// change is durable.
	inTxn, committed int
	// recsInTxn counts the changes in txn that append a record (setRecord).
	recsInTxn int
	// observe, if set, gets the duration of each commit that succeeded
	// with records in it (BadgerOptions.ObserveSync).
	observe func(time.Duration)
}

func newChunker(db *badger.DB) *chunker { return &chunker{db: db, txn: db.NewTransaction(true)} }

func (c *chunker) set(k, v []byte) error {
	return c.do(func(txn *badger.Txn) error { return txn.Set(k, v) })
}

// setRecord is set for a record appended to the log: the commits that
// hold one are observed.
func (c *chunker) setRecord(k, v []byte) error {
	err := c.set(k, v)
	if err == nil {
		c.recsInTxn++
	}
	return err
}

// changes is the number of changes made through c so far.
func (c *chunker) changes() int { return c.committed + c.inTxn }

func (c *chunker) del(k []byte) error {
	return c.do(func(txn *badger.Txn) error { return txn.Delete(k) })
}

func (c *chunker) do(op func(*badger.Txn) error) error {
	err := op(c.txn)
	if errors.Is(err, badger.ErrTxnTooBig) && c.inTxn > 0 {
		if err := c.commit(); err != nil {
			return err
		}
		err = op(c.txn)
	}
	if err != nil {
		return err
	}
	c.inTxn++
	return nil
}

// commit commits the current transaction and starts the next one.
func (c *chunker) commit() error {
	start := time.Now()
	err := c.txn.Commit()
	took := time.Since(start)
	c.txn = c.db.NewTransaction(true)
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if c.observe != nil && c.recsInTxn > 0 {
		c.observe(took)
	}
	c.committed += c.inTxn
	c.inTxn, c.recsInTxn = 0, 0
	return nil
}

func (c *chunker) discard() { c.txn.Discard() }

// moveBatch is how many records a Truncate reads at a time.
const moveBatch = 512

// finishPending moves (or deletes) every record above p.After, removes the
// marker and commits, through c. Idempotent: see the pending type.
func (l *BadgerLog) finishPending(c *chunker, p pending) error {
	if err := l.movePending(c, p); err != nil {
		return err
	}
	return c.commit()
}

// movePending is finishPending without the final commit, so that the
// caller may add changes to the same transaction. Each batch of records is
// read from the committed state starting past the keys c has already
// changed, so c need not commit between batches, and a truncation that fits
// one transaction is one transaction. The records must not change except
// through c meanwhile.
func (l *BadgerLog) movePending(c *chunker, p pending) error {
	next := p.After + 1
	for {
		var keys, vals [][]byte
		err := l.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixRecord), PrefetchValues: p.Rollback, PrefetchSize: 64})
			defer it.Close()
			for it.Seek(recordKey(next)); it.Valid() && len(keys) < moveBatch; it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
				if p.Rollback {
					v, err := it.Item().ValueCopy(nil)
					if err != nil {
						return err
					}
					vals = append(vals, v)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read records after %d: %w", next-1, err)
		}
		for i, k := range keys {
			off, err := parseSeqKey(prefixRecord, k)
			if err != nil {
				return err
			}
			if p.Rollback {
				if err := c.set(rollbackKey(p.Seq+off-uint64(p.After)-1), vals[i]); err != nil {
					return err
				}
			}
			if err := c.del(k); err != nil {
				return err
			}
			next = Offset(off) + 1
		}
		if len(keys) < moveBatch {
			break
		}
	}
	return c.del([]byte(keyPending))
}

// deleteBelow deletes every key under prefix numbered below n.
func (l *BadgerLog) deleteBelow(prefix string, n uint64) error {
	for {
		var keys [][]byte
		err := l.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
			defer it.Close()
			for it.Rewind(); it.Valid() && len(keys) < moveBatch; it.Next() {
				k := it.Item().KeyCopy(nil)
				if seq, err := parseSeqKey(prefix, k); err != nil || seq >= n {
					break
				}
				keys = append(keys, k)
			}
			return nil
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		c := newChunker(l.db)
		for _, k := range keys {
			if err := c.del(k); err != nil {
				c.discard()
				return err
			}
		}
		err = c.commit()
		c.discard()
		if err != nil {
			return err
		}
	}
}

// writable reports the error a write must return, if any. Caller holds wmu.
func (l *BadgerLog) writable(op string) error {
	if err := l.unwritable(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// unwritable is ErrClosed or ErrReadOnly when the log refuses writes, else
// nil. Caller holds wmu.
func (l *BadgerLog) unwritable() error {
	switch {
	case l.closed:
		return ErrClosed
	case l.readOnly:
		return ErrReadOnly
	}
	return nil
}

// notify wakes every Wait. Caller holds mu exclusively.
func (l *BadgerLog) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Append implements Log. On a storage error after part of a batch too large
// for one transaction was committed, that prefix is in the log and Last()
// reports it.
func (l *BadgerLog) Append(recs []Record) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writable("append"); err != nil {
		return err
	}
	if err := checkAppend(recs, l.last, l.lastEpoch); err != nil {
		return err
	}
	c := newChunker(l.db)
	c.observe = l.observeSync
	defer c.discard()
	encoded := make([][]byte, 0, len(recs))
	var (
		sweepTo Offset
		sweepAt = -1
	)
	err := func() error {
		for _, r := range recs {
			v, err := EncodeRecord(r)
			if err != nil {
				return err
			}
			if err := c.setRecord(recordKey(r.Offset), v); err != nil {
				return fmt.Errorf("write offset %d: %w", r.Offset, err)
			}
			encoded = append(encoded, v)
		}
		var err error
		if sweepTo, sweepAt, err = l.sweepSome(c, sweepPerWrite); err != nil {
			return err
		}
		return c.commit()
	}()
	l.sweptTo(c, sweepAt, sweepTo)
	if n := min(c.committed, len(recs)); n > 0 {
		l.mu.Lock()
		l.last, l.lastEpoch = recs[n-1].Offset, recs[n-1].Epoch
		// Badger is done with the values once committed, and nobody
		// modifies them: the cache may keep them.
		for i, v := range encoded[:n] {
			l.tail.add(recs[i].Offset, v)
		}
		l.notify()
		l.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("append offsets %d-%d: %w", recs[0].Offset, recs[len(recs)-1].Offset, err)
	}
	return nil
}

// Read implements Log.
func (l *BadgerLog) Read(from Offset, maxBytes int) ([]Record, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, fmt.Errorf("read from %d: %w", from, ErrClosed)
	}
	if from < l.first {
		return nil, fmt.Errorf("read from %d (first %d): %w", from, l.first, ErrCompacted)
	}
	out := []Record{}
	if from > l.last {
		return out, nil
	}
	last := l.last
	if out, ok, err := l.readTail(from, last, maxBytes); ok || err != nil {
		if err != nil {
			return nil, fmt.Errorf("read from %d: %w", from, err)
		}
		return out, nil
	}
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixRecord), PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		next, total := from, 0
		for it.Seek(recordKey(from)); next <= last && (len(out) == 0 || total < maxBytes); it.Next() {
			// Pair assertion: the key we reach is the offset we expect.
			if !it.Valid() {
				return &CorruptError{Offset: next, Reason: "missing"}
			}
			if off, err := parseSeqKey(prefixRecord, it.Item().Key()); err != nil || Offset(off) != next {
				return &CorruptError{Offset: next, Reason: fmt.Sprintf("missing (next key %q)", it.Item().Key())}
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("read offset %d: %w", next, err)
			}
			r, err := DecodeRecord(next, v)
			if err != nil {
				return err
			}
			out = append(out, r)
			total += len(v)
			next++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read from %d: %w", from, err)
	}
	return out, nil
}

// readTail serves Read from the tail cache: ok false when from is not
// cached. The caller holds mu (read) and has checked from <= last.
func (l *BadgerLog) readTail(from, last Offset, maxBytes int) ([]Record, bool, error) {
	if _, ok := l.tail.get(from); !ok {
		return nil, false, nil
	}
	var out []Record
	total := 0
	// The cache reaches last (its invariant), so every offset is found.
	for off := from; off <= last && (len(out) == 0 || total < maxBytes); off++ {
		v, ok := l.tail.get(off)
		if !ok {
			return nil, false, &CorruptError{Offset: off, Reason: "missing from the tail cache"}
		}
		r, err := DecodeRecord(off, v)
		if err != nil {
			return nil, false, err
		}
		out = append(out, r)
		total += len(v)
	}
	return out, true, nil
}

// First implements Log.
func (l *BadgerLog) First() Offset {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.first
}

// Last implements Log.
func (l *BadgerLog) Last() Offset {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.last
}

// LastEpoch implements Log.
func (l *BadgerLog) LastEpoch() Epoch {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.lastEpoch
}

// Epochs implements Log.
func (l *BadgerLog) Epochs() []EpochStart {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return slices.Clone(l.epochs)
}

// Truncate implements Log.
func (l *BadgerLog) Truncate(after Offset) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writable(fmt.Sprintf("truncate after %d", after)); err != nil {
		return err
	}
	if after >= l.last {
		return nil
	}
	if after+1 < l.first {
		return fmt.Errorf("truncate after %d (first %d): %w", after, l.first, ErrCompacted)
	}
	lastEpoch := l.baseEpoch
	if after >= l.first {
		r, err := l.get(after)
		if err != nil {
			return fmt.Errorf("truncate after %d: %w", after, err)
		}
		lastEpoch = r.Epoch
	}
	epochs := truncateEpochs(l.epochs, after)
	p := pending{After: after, Rollback: true, Seq: l.rbNext}
	moved := uint64(l.last - after)

	l.mu.Lock()
	defer l.mu.Unlock()
	// The marker and the new epoch history come first, so that whichever
	// transaction commits first is the commit point. When everything fits
	// in one transaction, the marker is set and deleted in it.
	c := newChunker(l.db)
	defer c.discard()
	err := c.set([]byte(keyPending), mustMarshal(p))
	if err == nil {
		err = c.set([]byte(keyEpochs), mustMarshal(epochs))
	}
	if err == nil {
		err = l.finishPending(c, p)
	}
	if c.committed > 0 {
		l.tail.reset()
		l.last, l.lastEpoch, l.epochs = after, lastEpoch, epochs
		l.rbNext = p.Seq + moved
	}
	if err != nil {
		return fmt.Errorf("truncate after %d: %w", after, err)
	}
	return nil
}

// RolledBack implements Log.
func (l *BadgerLog) RolledBack(limit int) ([]Record, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, fmt.Errorf("read rollback area: %w", ErrClosed)
	}
	out := []Record{}
	if limit <= 0 {
		return out, nil
	}
	end := l.rbNext
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixRollback), PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Seek(rollbackKey(l.rbFirst)); it.Valid() && len(out) < limit; it.Next() {
			seq, err := parseSeqKey(prefixRollback, it.Item().Key())
			if err != nil {
				return err
			}
			if seq >= end {
				break
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("read rollback sequence %d: %w", seq, err)
			}
			r, err := DecodeRecord(0, v)
			if err != nil {
				return fmt.Errorf("rollback sequence %d: %w", seq, err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read rollback area: %w", err)
	}
	return out, nil
}

// DiscardRolledBack implements Log.
func (l *BadgerLog) DiscardRolledBack(n int) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writable(fmt.Sprintf("discard %d rolled back", n)); err != nil {
		return err
	}
	if n < 0 || uint64(n) > l.rbNext-l.rbFirst {
		return fmt.Errorf("discard %d rolled back of %d: %w", n, l.rbNext-l.rbFirst, ErrOutOfRange)
	}
	if n == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// m/rbfirst first: it is the commit point, and a later open deletes
	// whatever lies below it.
	c := newChunker(l.db)
	defer c.discard()
	newFirst := l.rbFirst + uint64(n)
	err := c.set([]byte(keyRBFirst), mustMarshal(newFirst))
	for seq := l.rbFirst; err == nil && seq < newFirst; seq++ {
		err = c.del(rollbackKey(seq))
	}
	if err == nil {
		err = c.commit()
	}
	if c.committed > 0 {
		l.rbFirst = newFirst
	}
	if err != nil {
		return fmt.Errorf("discard %d rolled back: %w", n, err)
	}
	return nil
}

// SetMeta implements Log.
func (l *BadgerLog) SetMeta(name string, value []byte) error {
	if err := checkMeta(name, value); err != nil {
		return err
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writable(fmt.Sprintf("set meta %q", name)); err != nil {
		return err
	}
	v := slices.Clone(value)
	if v == nil {
		v = []byte{}
	}
	err := l.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(prefixMeta+name), v) })
	if err != nil {
		return fmt.Errorf("set meta %q: %w", name, err)
	}
	return nil
}

// Meta implements Log.
func (l *BadgerLog) Meta(name string) ([]byte, bool, error) {
	if err := checkMeta(name, nil); err != nil {
		return nil, false, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, false, fmt.Errorf("get meta %q: %w", name, ErrClosed)
	}
	var v []byte
	err := l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(prefixMeta + name))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get meta %q: %w", name, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// AddEpoch implements Log.
func (l *BadgerLog) AddEpoch(e EpochStart) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writable(fmt.Sprintf("add epoch %d", e.Epoch)); err != nil {
		return err
	}
	if err := checkAddEpoch(l.epochs, e, l.last); err != nil {
		return err
	}
	epochs := append(slices.Clone(l.epochs), e)
	err := l.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyEpochs), mustMarshal(epochs)) })
	if err != nil {
		return fmt.Errorf("add epoch %d: %w", e.Epoch, err)
	}
	l.mu.Lock()
	l.epochs = epochs
	l.mu.Unlock()
	return nil
}

// Compact implements Log.
func (l *BadgerLog) Compact(upto Offset) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writable(fmt.Sprintf("compact to %d", upto)); err != nil {
		return err
	}
	if upto > l.last {
		return fmt.Errorf("compact to %d beyond last %d: %w", upto, l.last, ErrOutOfRange)
	}
	if upto < l.first {
		return nil
	}
	epoch := l.lastEpoch
	if upto < l.last {
		r, err := l.get(upto)
		if err != nil {
			return fmt.Errorf("compact to %d: %w", upto, err)
		}
		epoch = r.Epoch
	}
	// Only m/base is written: records at or below it are invisible from
	// its commit on, and their keys are deleted later (sweepSome with the
	// next writes, the rest at Purge; a later open deletes any left).
	// Deleting them here, 100k records at a time, was one transaction of
	// 100k deletes with the writer's and the readers' locks held: sends
	// stalled for 1.5-3 s at every compaction (chatbench --long).
	err := l.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(keyBase), mustMarshal(base{Offset: upto, Epoch: epoch}))
	})
	if err != nil {
		return fmt.Errorf("compact to %d: %w", upto, err)
	}
	l.mu.Lock()
	l.tail.reset()
	l.first, l.baseEpoch = upto+1, epoch
	l.mu.Unlock()
	return nil
}

// sweepPerWrite is how many compacted record keys a write deletes besides
// its own changes: a compaction's 100k keys go within about 3,000 writes
// (seconds under load; Purge sweeps what is left). More cost the writes
// themselves: with 64, the slowest of 500 appends after a compaction took
// 7-8 ms instead of 0.5 (BenchmarkCompact_Stall).
const sweepPerWrite = 32

// sweepSome deletes up to n of the compacted record keys not yet deleted
// through c, and returns the offset the sweep reaches once c commits them
// all, and the count of changes made before the first of them (-1: none).
// The caller holds wmu.
func (l *BadgerLog) sweepSome(c *chunker, n int) (to Offset, at int, err error) {
	to = min(l.first-1, l.swept+Offset(n))
	if to <= l.swept {
		return l.swept, -1, nil
	}
	at = c.changes()
	for off := l.swept + 1; off <= to; off++ {
		if err := c.del(recordKey(off)); err != nil {
			return l.swept, -1, fmt.Errorf("delete compacted record %d: %w", off, err)
		}
	}
	return to, at, nil
}

// sweptTo moves the sweep to what c committed of the keys sweepSome added
// at change at, up to to. The caller holds wmu.
func (l *BadgerLog) sweptTo(c *chunker, at int, to Offset) {
	if at < 0 {
		return
	}
	if n := Offset(max(c.committed-at, 0)); n > 0 {
		l.swept = min(to, l.swept+n)
	}
}

// sweep deletes every compacted record key not yet deleted, a chunk at a
// time with wmu held only for each chunk, so that writers go on meanwhile.
func (l *BadgerLog) sweep(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		done, err := func() (bool, error) {
			l.wmu.Lock()
			defer l.wmu.Unlock()
			if err := l.writable("sweep compacted records"); err != nil {
				return false, err
			}
			c := newChunker(l.db)
			defer c.discard()
			to, at, err := l.sweepSome(c, moveBatch*2)
			if err != nil || at < 0 {
				return true, err
			}
			err = c.commit()
			l.sweptTo(c, at, to)
			return false, err
		}()
		if err != nil || done {
			return err
		}
	}
}

// Restore implements Log.
func (l *BadgerLog) Restore(last Offset, lastEpoch Epoch, epochs []EpochStart) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.writable(fmt.Sprintf("restore to %d", last)); err != nil {
		return err
	}
	if err := checkEpochs(epochs, last); err != nil {
		return fmt.Errorf("restore to %d: %w", last, err)
	}
	epochs = slices.Clone(epochs)
	l.mu.Lock()
	defer l.mu.Unlock()
	// The new base, history and (when records above last exist) a pending
	// marker come first: the first commit makes every old record invisible.
	c := newChunker(l.db)
	defer c.discard()
	err := c.set([]byte(keyBase), mustMarshal(base{Offset: last, Epoch: lastEpoch}))
	if err == nil {
		err = c.set([]byte(keyEpochs), mustMarshal(epochs))
	}
	above := l.last > last
	if err == nil && above {
		err = c.set([]byte(keyPending), mustMarshal(pending{After: last}))
	}
	// From the sweep on, not the first record: compacted keys not yet
	// swept would otherwise lie above a new base below them, as records.
	for off := l.swept + 1; err == nil && off <= l.last; off++ {
		err = c.del(recordKey(off))
	}
	if err == nil && above {
		err = c.del([]byte(keyPending))
	}
	if err == nil {
		err = c.commit()
	}
	if c.committed > 0 {
		l.tail.reset()
		grew := last > l.last
		l.first, l.last, l.lastEpoch, l.baseEpoch, l.epochs = last+1, last, lastEpoch, lastEpoch, epochs
		// Every record key is deleted once all of it committed (those
		// above the old sweep just above); a base moved below the sweep
		// has its keys written again by appends, to be swept again once
		// compacted. (After a partial commit, the next open deletes what
		// is left: below the base, or above it under the pending marker.)
		l.swept = min(l.swept, l.first-1)
		if err == nil {
			l.swept = l.first - 1
		}
		if grew {
			l.notify()
		}
	}
	if err != nil {
		return fmt.Errorf("restore to %d: %w", last, err)
	}
	return nil
}

// Wait implements Log.
func (l *BadgerLog) Wait(ctx context.Context, after Offset) error {
	return waitPast(ctx, after, func() (bool, Offset, <-chan struct{}) {
		l.mu.RLock()
		defer l.mu.RUnlock()
		return l.closed, l.last, l.changed
	})
}

// Close implements Log. It waits for a write in progress, wakes every Wait
// with ErrClosed and closes the database (and so DB()).
func (l *BadgerLog) Close() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.notify()
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("close eventlog %s: %w", l.dir, err)
	}
	return nil
}
