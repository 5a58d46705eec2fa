package replica

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrNotPrimary is returned by Propose on a node that is not the primary.
	// It is wrapped by *NotPrimaryError, which carries a hint.
	ErrNotPrimary = errors.New("replica: not primary")
	// ErrBackpressure is returned by Propose when too many records are
	// proposed but not yet committed; the caller retries later.
	ErrBackpressure = errors.New("replica: too many uncommitted records")
	// ErrInvalidConfig is wrapped by every Config validation error.
	ErrInvalidConfig = errors.New("replica: invalid config")
	// ErrStopped is returned by every method once a read of the log has
	// failed: the node's view of its own log can no longer be trusted, so it
	// stops (the caller must recreate it from a healthy log).
	ErrStopped = errors.New("replica: node stopped after a log read error")
	// ErrUnknownPeer is returned by Step for a message from or to a node that
	// is not in Config.Peers.
	ErrUnknownPeer = errors.New("replica: unknown peer")
	// ErrEmptyProposal is returned by Propose when given no records.
	ErrEmptyProposal = errors.New("replica: empty proposal")
	// ErrNoIdentity is returned by NewNode for a log without an identity:
	// call EnsureIdentity first.
	ErrNoIdentity = errors.New("replica: the data directory has no identity")
	// ErrOutOfRange is returned for an offset the log cannot serve (Compact
	// beyond the durable end, ISRAt beyond the log end).
	ErrOutOfRange = errors.New("replica: offset out of range")
	// ErrDiskFull is returned by Propose while the shell reports the disk
	// nearly full (Node.SetDiskFull): the records were not taken.
	ErrDiskFull = errors.New("replica: disk nearly full; not taking writes")
	// ErrWrongIdentity: the data directory's identity names another
	// replica (a directory started with the wrong --id).
	ErrWrongIdentity = errors.New("replica: the data directory belongs to another replica")
	// ErrForkTooDeep stops a node whose log diverges from the primary's
	// before its first retained record: the records it would have to
	// truncate (and re-submit) were compacted, which the shell's
	// compaction bound (shell.Config.ForkRetain) allows only past the
	// offset durable on every replica. The node must be repaired (its
	// disk replaced: it installs a snapshot as a new member).
	ErrForkTooDeep = errors.New("replica: the log diverges from the primary's before its compacted part")
)

// NotPrimaryError is returned by Propose on a backup. Primary is the node
// this one believes to be the primary, or None if it knows of none.
type NotPrimaryError struct {
	Primary NodeID
	// Waiting explains why no primary is known, when Primary is None.
	Waiting string
}

// Error says who the primary is, or why none is known.
func (e *NotPrimaryError) Error() string {
	if e.Primary == None {
		if e.Waiting != "" {
			return "replica: not primary; no primary known: " + e.Waiting
		}
		return "replica: not primary; no primary known"
	}
	return fmt.Sprintf("replica: not primary; primary is replica %s", e.Primary)
}

// Unwrap makes errors.Is(err, ErrNotPrimary) true.
func (e *NotPrimaryError) Unwrap() error { return ErrNotPrimary }
