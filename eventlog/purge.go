package eventlog

import (
	"context"
	"fmt"

	"github.com/replichat/replichat/eventlog/badgerdb"
)

// purgeKey is the filler key Purge writes beside the log: outside
// KeyPrefixes, and written by nobody else.
const purgeKey = "x/purge"

// Purge makes the records Compact, Restore, Truncate and DiscardRolledBack
// removed gone from the log's files too (badgerdb.Purge): Badger keeps a
// removed record's bytes in its write-ahead logs and tables until its
// memtables are flushed and its levels compacted, and a compacted record
// can hold a message since deleted. Appends and every other operation go on
// meanwhile: Purge takes the writers' lock only for a chunk of deletes at a
// time (the compacted records' keys not yet deleted) and blocks no write
// otherwise.
//
// It may take seconds (a Flatten of the database). It must not be called
// concurrently with Close or with another Purge.
func (l *BadgerLog) Purge(ctx context.Context) error {
	l.mu.RLock()
	err := l.unwritable()
	l.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("purge the log: %w", err)
	}
	// The compacted records' keys first (Compact leaves them to later
	// writes): only then are their values garbage the purge removes.
	if err := l.sweep(ctx); err != nil {
		return fmt.Errorf("purge the log: %w", err)
	}
	if err := badgerdb.Purge(ctx, l.db, []byte(purgeKey)); err != nil {
		return fmt.Errorf("purge the log: %w", err)
	}
	return nil
}
