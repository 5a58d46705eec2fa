package badgerdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Purge makes what db's transactions deleted or overwrote gone from its
// files: after it returns, no table, write-ahead log or value-log file of
// the database holds a version of a key older than the latest one committed
// before the call (a deleted key: none at all). It is how "deleted" becomes
// "gone from the disk" (a deleted chat message, a compacted log record).
//
// Badger keeps old versions and tombstones in two places:
//   - the write-ahead logs of its memtables (<fid>.mem), until the memtable
//     is flushed to a level-0 table and its log deleted;
//   - the tables (.sst), until a compaction merges a tombstone or a newer
//     version with the older ones (below the oldest running read
//     transaction) and, at the bottom level, drops the tombstone too.
//
// Badger's only APIs that flush a memtable on request (DB.DropPrefix,
// DB.DropAll, Close) block the database's writes while they run, and a
// write during that time fails with ErrBlockedWrites: for the event log,
// whose writer is the replication loop, that would stall heartbeats for
// the flush plus a level-0 compaction (measured: 175-450 ms on a log of
// 110k records, past a failure timeout). So Purge blocks nothing:
//
//  1. It writes filler values (zeros, just under the value threshold, so
//     they stay in the memtable) under fillerKey until every write-ahead
//     log that existed when it started has been flushed and deleted: the
//     memtable fills up and Badger rotates it as it does under load.
//     That costs about one memtable (16 MiB) of writes.
//  2. If the flushed tables are all the database has (every table at level
//     0: a young database), no Flatten would touch them; it goes on
//     writing filler until Badger's own compactor has merged them into a
//     lower level (at most NumLevelZeroTables more memtables).
//  3. DB.Flatten merges every level into one, which drops the old versions
//     and the tombstones (all of them meet at the bottom level). Flatten
//     pauses Badger's compactions, not its writes.
//  4. It deletes fillerKey.
//
// The cost is the filler's writes (synced, on a database with SyncWrites)
// and a Flatten, which rewrites up to the whole database: measured on a
// small machine, 0.2 s for a 40 MB log, about 1.5 s for a state of 1M
// messages (README, "Snapshots and compaction"). A transaction that reads
// while Purge runs keeps the versions it may read; a read transaction open
// across the whole of Purge (a long scan) can make it leave those versions,
// and a memtable it holds makes step 1 wait for it (up to PurgeTimeout).
//
// fillerKey must be a key nobody else writes. Purge must not run
// concurrently with itself or with DropPrefix, DropAll or Flatten on db.
func Purge(ctx context.Context, db *badger.DB, fillerKey []byte) error {
	if db.Opts().ReadOnly || db.Opts().InMemory {
		return errors.New("badgerdb: purge needs a writable, on-disk database")
	}
	p := &purge{db: db, key: fillerKey, opts: db.Opts()}
	p.value = make([]byte, p.fillerSize())
	deadline := time.Now().Add(PurgeTimeout)
	if err := p.flushMemtables(ctx, deadline); err != nil {
		return fmt.Errorf("purge %s: %w", p.opts.Dir, err)
	}
	if err := p.compactLevelZero(ctx, deadline); err != nil {
		return fmt.Errorf("purge %s: %w", p.opts.Dir, err)
	}
	if err := db.Flatten(1); err != nil {
		return fmt.Errorf("purge %s: flatten: %w", p.opts.Dir, err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete(fillerKey) }); err != nil {
		return fmt.Errorf("purge %s: %w", p.opts.Dir, err)
	}
	return nil
}

// PurgeTimeout bounds how long Purge waits for Badger to flush and compact
// what its filler pushed out.
const PurgeTimeout = 2 * time.Minute

// purgePoll is how often Purge looks at the files while it waits.
const purgePoll = 10 * time.Millisecond

type purge struct {
	db    *badger.DB
	key   []byte
	opts  badger.Options
	value []byte
}

// fillerSize is the size of one filler value: as large as stays in the
// memtable (below the value threshold) and fits a transaction.
func (p *purge) fillerSize() int {
	n := min(p.opts.ValueThreshold-1, p.db.MaxBatchSize()/2, 1<<20) - int64(len(p.key)) - 64
	return int(max(n, 1<<10))
}

// write writes one filler value.
func (p *purge) write() error {
	return p.db.Update(func(txn *badger.Txn) error { return txn.Set(p.key, p.value) })
}

// writesPerMemtable is how many filler writes fill a memtable (with room
// for Badger's accounting).
func (p *purge) writesPerMemtable() int {
	return int(p.opts.MemTableSize/int64(len(p.value))) + 2
}

// flushMemtables writes filler until the memtable taking writes at the
// start has been rotated out (a write-ahead log newer than every one
// present at the start exists), then waits until none of the write-ahead
// logs present at the start is left: their memtables are flushed.
func (p *purge) flushMemtables(ctx context.Context, deadline time.Time) error {
	wals, err := filepath.Glob(filepath.Join(p.opts.Dir, "*.mem"))
	if err != nil {
		return err
	}
	old := slices.Clone(wals)
	rotated := func() bool {
		now, err := filepath.Glob(filepath.Join(p.opts.Dir, "*.mem"))
		if err != nil {
			return false
		}
		for _, w := range now {
			if !slices.Contains(old, w) {
				return true
			}
		}
		return false
	}
	flushed := func() bool {
		wals = slices.DeleteFunc(wals, func(w string) bool {
			_, err := os.Stat(w)
			return errors.Is(err, os.ErrNotExist)
		})
		return len(wals) == 0
	}
	// One memtable's worth, and slack for a flush that makes the next
	// rotation wait (Badger then retries the write).
	limit := 2 * p.writesPerMemtable()
	return p.fill(ctx, deadline, limit, "the memtables to be flushed", func() bool { return !rotated() }, flushed)
}

// compactLevelZero, when level 0 holds every table of the database, writes
// filler until those tables have been compacted (merged into a lower
// level, or into one another), which drops what they hold of old versions.
// Flatten does nothing for a database whose only tables are at level 0 and
// fewer than NumLevelZeroTables. Badger's compactor takes level 0 once it
// holds NumLevelZeroTables tables: filler makes them.
func (p *purge) compactLevelZero(ctx context.Context, deadline time.Time) error {
	var top []uint64
	for _, t := range p.db.Tables() {
		if t.Level != 0 {
			return nil // Flatten merges level 0 into the level below
		}
		top = append(top, t.ID)
	}
	if len(top) == 0 {
		return nil
	}
	compacted := func() bool {
		for _, t := range p.db.Tables() {
			if t.Level == 0 && slices.Contains(top, t.ID) {
				return false
			}
		}
		return true
	}
	needsTables := func() bool {
		n := 0
		for _, t := range p.db.Tables() {
			if t.Level == 0 {
				n++
			}
		}
		return n < p.opts.NumLevelZeroTables
	}
	limit := (p.opts.NumLevelZeroTables + 2) * p.writesPerMemtable()
	return p.fill(ctx, deadline, limit, "level 0 to be compacted", needsTables, compacted)
}

// fill writes filler while more reports true (at most limit values), and
// waits until done reports true, until the deadline.
func (p *purge) fill(ctx context.Context, deadline time.Time, limit int, what string, more, done func() bool) error {
	for written := 0; !done(); {
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up waiting for %s after %v (a long read transaction holds them?)", what, PurgeTimeout)
		}
		if written < limit && more() {
			if err := p.write(); err != nil {
				return fmt.Errorf("write filler: %w", err)
			}
			written++
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(purgePoll):
		}
	}
	return nil
}
