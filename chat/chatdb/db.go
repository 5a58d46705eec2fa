package chatdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"

	"github.com/replichat/replichat/eventlog/badgerdb"

	"github.com/replichat/replichat/chat"
)

// Options configures Open. The zero value has small memory settings and no
// logging.
type Options struct {
	// Logger receives Badger's warnings and errors. Nil discards them.
	Logger *slog.Logger
	// MemTableSize is Badger's memtable size; 0 means the shared default
	// (16 MiB, badgerdb.Config). Tests lower it to reach Badger's levels
	// (and make Purge cheap) with little data.
	MemTableSize int64
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
	db, err := openDB(badgerOptions(dir, opts.MemTableSize, logger))
	if err != nil {
		return nil, fmt.Errorf("open chat state %s: %w", dir, err)
	}
	return &DB{db: db, dir: dir}, nil
}

// badgerOptions are the shared small-footprint settings, without SyncWrites:
// the state is derived from the (fsynced) log and stores its applied offset
// in the same transaction as its changes, so a lost suffix is replayed and
// commits need not wait for the disk.
func badgerOptions(dir string, memTable int64, logger *slog.Logger) badger.Options {
	return badgerdb.Options(badgerdb.Config{Dir: dir, SyncWrites: false, MemTableSize: memTable, Logger: logger})
}

// openDB opens Badger; a directory held by another process wraps ErrLocked.
func openDB(o badger.Options) (*badger.DB, error) {
	db, err := badgerdb.Open(o)
	if errors.Is(err, badgerdb.ErrLocked) {
		return nil, fmt.Errorf("%w: %w", ErrLocked, err)
	}
	return db, err
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

// VerifyChecksum reads every table of the database and verifies the
// checksum of each block: an error names a table whose bytes changed on
// disk. It costs a read of the whole database (about 6 ms per MiB of tables
// on a small machine); chatd runs it at start, and rebuilds a state that
// fails it from the log.
func (d *DB) VerifyChecksum() error {
	if d.closed.Load() {
		return ErrClosed
	}
	if err := badgerdb.VerifyChecksum(d.db); err != nil {
		return fmt.Errorf("verify chat state %s: %w", d.dir, err)
	}
	return nil
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

// purgeKey is the filler key Purge writes: outside the chat state's "c/".
var purgeKey = []byte("x/purge")

// Purge makes what the state deleted or overwrote gone from the database's
// files (badgerdb.Purge): a deleted message's record, a deleted account's,
// the undo records dropped since. Applies, queries and snapshots go on
// meanwhile; it blocks none of them. It may take seconds (a Flatten of the
// whole database: about 1.5 s for a state of 1M messages on a small
// machine). It must not be called concurrently with Close or with another
// Purge.
func (d *DB) Purge(ctx context.Context) error {
	if d.closed.Load() {
		return ErrClosed
	}
	if err := badgerdb.Purge(ctx, d.db, purgeKey); err != nil {
		return fmt.Errorf("purge chat state: %w", err)
	}
	return nil
}
