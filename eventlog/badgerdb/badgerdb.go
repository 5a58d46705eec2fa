// Package badgerdb opens the Badger databases a replica keeps (the event
// log's and the chat state's) with the small, bounded memory footprint both
// need, routes Badger's logging to slog, and turns Badger's failures at open
// (a directory held by another process, a damaged directory that makes it
// panic) into clear errors. The two databases differ only in durability: the
// log fsyncs every commit, the state (derived from the log) does not.
package badgerdb

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/ristretto/v2/z"
)

// ErrLocked is wrapped by Open's error when another process holds the
// directory.
var ErrLocked = errors.New("badgerdb: directory in use by another process")

// Config describes a database to open. Zero sizes pick the defaults.
type Config struct {
	Dir        string
	ReadOnly   bool
	SyncWrites bool
	// MemTableSize bounds memory and the write-ahead log replayed at open
	// (so start-up time), and sets the largest transaction (15% of it).
	// Default 16 MiB.
	MemTableSize int64
	// BlockCacheSize bounds the cache of table blocks. Default 16 MiB.
	BlockCacheSize int64
	Logger         *slog.Logger // nil discards
}

// Options returns the Badger options for c.
func Options(c Config) badger.Options {
	memTable := c.MemTableSize
	if memTable <= 0 {
		memTable = 16 << 20
	}
	blockCache := c.BlockCacheSize
	if blockCache <= 0 {
		blockCache = 16 << 20
	}
	logger := c.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return badger.DefaultOptions(c.Dir).
		WithReadOnly(c.ReadOnly).
		WithSyncWrites(c.SyncWrites).
		// Every database here has one writer (the log: the replica's loop,
		// plus purges of keys it no longer writes; the state: the applier),
		// so conflict detection only costs: Badger keeps the read keys of
		// every commit since the oldest open read transaction (a snapshot's
		// read view lives for seconds) and checks each commit against them.
		WithDetectConflicts(false).
		// WithLoggingLevel replaces the logger with Badger's default one
		// (on stderr): set the level first. slogLogger drops Info and
		// Debug itself.
		WithLoggingLevel(badger.WARNING).
		WithLogger(slogLogger{logger}).
		// Small memtables bound memory and the log replayed at open. Each
		// memtable is an arena on the Go heap of MemTableSize plus ~4.8 MiB
		// (20.8 MiB at the default), allocated anew at every rotation.
		WithMemTableSize(memTable).
		// One memtable taking writes and one being flushed: more would only
		// hold more unflushed writes in memory while the disk is slow.
		WithNumMemtables(2).
		// An L0 table holds a whole flushed memtable and every lookup reads
		// each of them: few keep reads and the compaction backlog small, and
		// writes stall rather than let them pile up.
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(8).
		// A table builder allocates twice this up front, per compactor and
		// per flush (a flush of a full memtable grows to ~48 MiB), so it
		// bounds compaction memory.
		WithBaseTableSize(8 << 20).
		WithBlockCacheSize(blockCache).
		// Bound table indexes too, rather than hold every one in memory as
		// the database grows.
		WithIndexCacheSize(8 << 20).
		// Value-log files are mmapped; values are inline below the value
		// threshold, so the value log stays nearly empty and a small file
		// (Badger's default is 1 GiB) keeps the mapping small.
		WithValueLogFileSize(64 << 20).
		// Badger requires values inline below its transaction size limit.
		WithValueThreshold(min(1<<20, memTable*15/100/2)).
		// The target machines have few cores, and each compactor holds a
		// table builder (see BaseTableSize).
		WithNumCompactors(2).
		// Verify each table block's checksum when it is read: a block
		// whose bytes changed on disk is an error naming the table, never
		// data parsed from garbage (which made Badger's iterators panic).
		// Tables are not all verified at open: that would cost a read of
		// the whole database at every start (chatd verifies the state's,
		// which is rebuilt from the log if it fails).
		WithChecksumVerificationMode(options.OnBlockRead).
		WithMetricsEnabled(false)
}

// ErrUnclean is wrapped by a read-only Open's error when the directory's
// writer was killed and left files only a read-write open can repair: a
// memtable with a torn tail, or a memtable or value-log file it created but
// never sized. Opening it read-write once (as a restarted writer does) makes
// it readable.
var ErrUnclean = errors.New("badgerdb: the writer did not close the directory; it needs a read-write open")

// maxSizingRetries bounds Open's retries over files a killed writer created
// but never sized (see Open): one per such file, and a writer leaves at most
// a memtable and a value-log file half-created.
const maxSizingRetries = 4

// Open opens Badger with o, turning its lock failure into ErrLocked, a
// read-only open of an uncleanly closed directory into ErrUnclean, and a
// panic on a damaged directory into an error.
//
// A writer killed between creating a memtable or value-log file and sizing
// it leaves the file empty, and badger v4.9.6 then fails every first open
// (dgraph-io/badger#2207): read-write, it sizes the file and then returns
// z.NewFile as an error; read-only, the sizing fails with EINVAL. The empty
// file holds no data, and the failed read-write open leaves it sized and
// valid, so a read-write open retries; a read-only one reports ErrUnclean.
func Open(o badger.Options) (*badger.DB, error) {
	if o.ReadOnly && !o.InMemory && hasEmptyLogFile(o.Dir) {
		return nil, fmt.Errorf("%w: a memtable or value-log file is empty", ErrUnclean)
	}
	for attempt := 1; ; attempt++ {
		db, err := open(o)
		if err == nil {
			return db, nil
		}
		msg := err.Error()
		switch {
		// Badger formats the flock error with %v (y.Wrapf outside debug
		// mode), so the errno is lost: recognize its message. Its other
		// errors below are recognized the same way.
		case errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(msg, "Cannot acquire directory lock"):
			return nil, fmt.Errorf("%w: %v", ErrLocked, err)
		case o.ReadOnly && strings.Contains(msg, badger.ErrTruncateNeeded.Error()):
			return nil, fmt.Errorf("%w: %v", ErrUnclean, err)
		case !o.ReadOnly && attempt < maxSizingRetries && strings.Contains(msg, z.NewFile.Error()):
			continue
		}
		return nil, err
	}
}

// open is badger.Open with a panic turned into an error.
func open(o badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("badger panicked (damaged data directory?): %v", r)
		}
	}()
	return badger.Open(o)
}

// hasEmptyLogFile reports whether dir holds a zero-length memtable or
// value-log file (see Open).
func hasEmptyLogFile(dir string) bool {
	for _, pattern := range []string{"*.mem", "*.vlog"} {
		files, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil && fi.Size() == 0 {
				return true
			}
		}
	}
	return false
}

// VerifyChecksum reads every table of db and verifies each block's
// checksum, as db.VerifyChecksum does, turning the panic with which badger
// v4.9.6 reports a block that fails (Table.VerifyChecksum formats the
// offset of the nil block it could not read, so it cannot say which table)
// into an error.
func VerifyChecksum(db *badger.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("a table block does not match its checksum; badger does not say which table")
		}
	}()
	return db.VerifyChecksum()
}

// slogLogger routes Badger's log to slog. Badger logs at WARNING and above
// (see Options); Info and Debug are dropped here too.
type slogLogger struct{ l *slog.Logger }

func (b slogLogger) Errorf(f string, args ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, args...)), "component", "badger")
}

func (b slogLogger) Warningf(f string, args ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, args...)), "component", "badger")
}

func (slogLogger) Infof(string, ...any)  {}
func (slogLogger) Debugf(string, ...any) {}
