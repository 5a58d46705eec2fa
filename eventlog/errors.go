package eventlog

import (
	"errors"
	"fmt"
)

// Sentinel errors. Implementations wrap them with context; test with errors.Is.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("eventlog: closed")
	// ErrCompacted is returned by Read for an offset before First(): the
	// record existed but is no longer retained (a snapshot covers it).
	ErrCompacted = errors.New("eventlog: offset compacted")
	// ErrNotContiguous is returned by Append when the records do not follow
	// the log's last offset one by one, or their epochs decrease.
	ErrNotContiguous = errors.New("eventlog: records not contiguous")
	// ErrCorrupt is wrapped by *CorruptError.
	ErrCorrupt = errors.New("eventlog: corrupt record")
	// ErrEpochOrder is returned by AddEpoch for an epoch that is not newer
	// than the last one in the history, or a start that precedes it.
	ErrEpochOrder = errors.New("eventlog: epoch history out of order")
	// ErrLocked is returned when opening a data directory that another
	// process (a running replica) holds.
	ErrLocked = errors.New("eventlog: data directory in use by another process")
	// ErrOutOfRange is returned for an offset or count the log cannot honour:
	// Compact beyond Last(), DiscardRolledBack of more records than the
	// rollback area holds, a negative count.
	ErrOutOfRange = errors.New("eventlog: offset or count out of range")
	// ErrInvalidMeta is returned by SetMeta and Meta for a name that is not a
	// short ASCII identifier, or a value larger than MaxMetaValue.
	ErrInvalidMeta = errors.New("eventlog: invalid meta name or value")
	// ErrReadOnly is returned by every write to a log opened read-only.
	ErrReadOnly = errors.New("eventlog: log is read-only")
	// ErrStopped is returned by GroupCommitter.Append when its Run loop is
	// not running (it returned, or its context is done).
	ErrStopped = errors.New("eventlog: group committer stopped")
)

// CorruptError reports a stored record that cannot be trusted.
type CorruptError struct {
	Offset Offset // the offset whose record is corrupt
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("eventlog: corrupt record at offset %d: %s", e.Offset, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }
