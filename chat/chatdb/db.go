package chatdb

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/dgraph-io/badger/v4"

	"github.com/replichat/replichat/chat"
)

// Options configures Open. The zero value has small memory settings and no
// logging.
type Options struct {
	// Logger receives Badger's warnings and errors. Nil discards them.
	Logger *slog.Logger
}

// DB is a replica's chat-state database: a Badger database of its own,
// separate from the event log's, written without fsync on commit (see
// "Durability" in the package doc). Create it with Open; it is safe for
// concurrent use.
type DB struct {
	db  *badger.DB
	dir string
	// closed makes Sync after Close an error: Badger's own Sync would block
	// forever on a closed database.
	closed atomic.Bool
}

// Open opens (creating if needed) the chat-state database in dir.
//
// A directory held by another process gives an error wrapping ErrLocked.
func Open(dir string, opts Options) (*DB, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db, err := openDB(badgerOptions(dir, logger))
	if err != nil {
		return nil, fmt.Errorf("open chat state %s: %w", dir, err)
	}
	return &DB{db: db, dir: dir}, nil
}

// badgerOptions are eventlog's small-memory settings, without SyncWrites.
func badgerOptions(dir string, logger *slog.Logger) badger.Options {
	const memTable = 16 << 20
	return badger.DefaultOptions(dir).
		// The state is derived from the (fsynced) log and stores its applied
		// offset in the same transaction as its changes: a lost suffix is
		// replayed, so commits need not wait for the disk.
		WithSyncWrites(false).
		WithLogger(badgerLogger{logger}).
		WithLoggingLevel(badger.WARNING).
		// Small memtables bound memory and the write-ahead log replayed at
		// open, hence the start-up time. Each is an arena on the Go heap of
		// MemTableSize plus ~4.8 MiB, allocated anew at every rotation.
		WithMemTableSize(memTable).
		// One memtable taking writes and one being flushed: more would only
		// hold more unflushed writes in memory.
		WithNumMemtables(2).
		// Every lookup reads each L0 table: few keep reads cheap, and writes
		// stall rather than let them pile up.
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(8).
		// A table builder allocates twice this up front, per compactor and
		// per flush, so it bounds compaction memory.
		WithBaseTableSize(8 << 20).
		// Both caches are bounded so that memory does not grow with the
		// state; the state's working set (recent messages, users) is small.
		WithBlockCacheSize(16 << 20).
		WithIndexCacheSize(8 << 20).
		// Value-log files are mmapped; values are inline below the value
		// threshold, so a small file keeps the mapping small.
		WithValueLogFileSize(64 << 20).
		// Badger requires values inline below its transaction size limit.
		WithValueThreshold(min(1<<20, memTable*15/100/2)).
		// Few cores; each compactor holds a table builder.
		WithNumCompactors(2).
		WithMetricsEnabled(false)
}

// openDB opens Badger, turning its lock failure into ErrLocked and a panic on
// a damaged directory into an error.
func openDB(o badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("badger panicked (damaged directory?): %v", r)
		}
	}()
	db, err = badger.Open(o)
	if err == nil {
		return db, nil
	}
	// Badger formats the flock error with %v, so the errno is lost:
	// recognize its message too.
	if errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(err.Error(), "Cannot acquire directory lock") {
		return nil, fmt.Errorf("%w: %v", ErrLocked, err)
	}
	return nil, err
}

// Store returns the chat.Store over this database, keys under "c/".
func (d *DB) Store() chat.Store { return New(d.db) }

// Sync makes every transaction committed so far durable, for the rare writes
// that must survive a power loss (a state reset after a fork: see the
// package doc). Badger's own DB.Sync covers only the active memtable's
// write-ahead log and the current value-log file; a memtable rotated but not
// yet flushed to a table keeps its unsynced log, so Sync also fsyncs every
// write-ahead log and value-log file left in the directory, then the
// directory. (Tables and the manifest are synced by Badger when written.)
// It must not be called after Close (Badger's Sync then blocks forever).
func (d *DB) Sync() error {
	if d.closed.Load() {
		return ErrClosed
	}
	if err := d.db.Sync(); err != nil {
		return fmt.Errorf("sync chat state: %w", err)
	}
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return fmt.Errorf("sync chat state: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".mem") && !strings.HasSuffix(name, ".vlog") {
			continue
		}
		if err := syncPath(filepath.Join(d.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			// A memtable flushed meanwhile has its log deleted: that is
			// fine, its table is synced.
			return fmt.Errorf("sync chat state: %w", err)
		}
	}
	if err := syncPath(d.dir); err != nil {
		return fmt.Errorf("sync chat state: %w", err)
	}
	return nil
}

// syncPath fsyncs a file or directory. fsync works on the inode, so it also
// writes back pages Badger dirtied through its own mapping of the file.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// Close closes the database; the state written so far survives a process
// crash after Close as before it, and Close itself flushes the memtables.
func (d *DB) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("close chat state %s: %w", d.dir, err)
	}
	return nil
}

// badgerLogger routes Badger's log to slog. Badger logs at WARNING and above
// (set in badgerOptions); Info and Debug are dropped here too.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, args ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, args...)), "component", "badger", "db", "state")
}

func (b badgerLogger) Warningf(f string, args ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, args...)), "component", "badger", "db", "state")
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}
