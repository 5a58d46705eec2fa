package chat

import (
	"errors"
	"fmt"

	"github.com/replichat/replichat/eventlog"
)

// codedError is a sentinel that carries a stable wire code, so that the
// server can map any error of this package to the wire protocol with Code.
type codedError struct {
	code string
	text string
}

func (e *codedError) Error() string { return "chat: " + e.text }

// Sentinel errors of the domain. Each has a stable wire code (see Code);
// errors returned by this package wrap them and are tested with errors.Is.
var (
	// ErrInvalidName: a user name outside 1..MaxNameLen bytes of [A-Za-z0-9_.-].
	ErrInvalidName = &codedError{"invalid_name", "invalid user name"}
	// ErrUserExists: the name is taken by a live account.
	ErrUserExists = &codedError{"user_exists", "user already exists"}
	// ErrUnknownUser: no live account has that name or id.
	ErrUnknownUser = &codedError{"unknown_user", "unknown user"}
	// ErrWrongPassword: the password does not match the account's hash.
	ErrWrongPassword = &codedError{"wrong_password", "wrong password"}
	// ErrMessageTooLarge: a body longer than MaxBodyBytes.
	ErrMessageTooLarge = &codedError{"message_too_large", "message too large"}
	// ErrEmptyMessage: an empty body.
	ErrEmptyMessage = &codedError{"empty_message", "empty message"}
	// ErrQueueFull is wrapped by *QueueFullError.
	ErrQueueFull = &codedError{"queue_full", "recipient's unread queue is full"}
	// ErrNotFound: a message id that does not exist, or whose caller's view
	// was already deleted.
	ErrNotFound = &codedError{"not_found", "message not found"}
	// ErrForbidden: a message that exists but is not the caller's.
	ErrForbidden = &codedError{"forbidden", "message belongs to another user"}
	// ErrInvalidArgument: any other malformed command or query argument.
	ErrInvalidArgument = &codedError{"invalid_argument", "invalid argument"}
	// ErrExpiredRequest: a (client id, seq) older than the dedup window of
	// that client. It was applied (or rejected) long ago; its result is gone.
	ErrExpiredRequest = &codedError{"expired_request", "request too old to deduplicate"}
	// ErrMessageExists: a send whose message id and every probe candidate
	// after it (see MessageID) are already used. Practically never.
	ErrMessageExists = &codedError{"message_exists", "message id already used"}
)

// Storage and integrity errors. They have no wire code of their own (Code
// reports "internal").
var (
	// ErrTxnTooBig is what a Store returns (wrapped) when one Update holds
	// more writes than it can commit at once; State.Apply then splits its
	// batch. chatdb maps Badger's ErrTxnTooBig to it.
	ErrTxnTooBig = errors.New("chat: transaction too big")
	// ErrGap is wrapped by *GapError.
	ErrGap = errors.New("chat: gap in applied records")
	// ErrIncompleteRestore: the store holds a snapshot restore that did not
	// finish (a crash mid-restore). The state is unusable until a restore
	// completes.
	ErrIncompleteRestore = errors.New("chat: incomplete snapshot restore")
	// ErrInconsistent is wrapped by every violation Check reports.
	ErrInconsistent = errors.New("chat: inconsistent state")
	// ErrBadSnapshot: a snapshot stream that is malformed or fails its digest.
	ErrBadSnapshot = errors.New("chat: bad snapshot")
	// ErrIncompleteRollback is wrapped by *IncompleteRollbackError: the
	// store holds a RollbackTo that did not finish (a crash or a store
	// failure mid-way). Apply refuses to run until RollbackTo completes it
	// or a snapshot restore (a reset) replaces the state.
	ErrIncompleteRollback = errors.New("chat: incomplete rollback")
	// ErrUndoUnavailable: RollbackTo cannot reach the offset asked, as the
	// undo history does not go back that far (see State.RollbackTo). The
	// state is unchanged; reset it and replay the log instead.
	ErrUndoUnavailable = errors.New("chat: undo history does not reach back")
)

// CodeInternal is the code of errors that are not domain errors.
const CodeInternal = "internal"

// Code returns the stable wire code of err ("invalid_name", "queue_full",
// ...), "" for nil, and CodeInternal for errors that are not domain errors.
func Code(err error) string {
	if err == nil {
		return ""
	}
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	return CodeInternal
}

// sentinelForCode is the inverse of Code for the domain sentinels.
func sentinelForCode(code string) error {
	for _, e := range []*codedError{ErrInvalidName, ErrUserExists, ErrUnknownUser, ErrWrongPassword,
		ErrMessageTooLarge, ErrEmptyMessage, ErrQueueFull, ErrNotFound, ErrForbidden,
		ErrInvalidArgument, ErrExpiredRequest, ErrMessageExists} {
		if e.code == code {
			return e
		}
	}
	return nil
}

// QueueFullError reports a send to a recipient whose unread queue holds
// Limit messages already.
type QueueFullError struct {
	To    string // the recipient's name
	Limit int
}

func (e *QueueFullError) Error() string {
	return fmt.Sprintf("chat: unread queue of %q is full (%d messages)", e.To, e.Limit)
}

// Unwrap makes errors.Is(err, ErrQueueFull) true.
func (e *QueueFullError) Unwrap() error { return ErrQueueFull }

// GapError reports a record that does not follow the applied offset.
type GapError struct {
	Applied uint64 // the offset applied so far
	Got     uint64 // the offset of the record offered
}

func (e *GapError) Error() string {
	return fmt.Sprintf("chat: record %d does not follow applied offset %d", e.Got, e.Applied)
}

// Unwrap makes errors.Is(err, ErrGap) true.
func (e *GapError) Unwrap() error { return ErrGap }

// IncompleteRollbackError reports a rollback that did not finish: the state
// is consistent as of its Applied offset, but holds records after To that
// the log may no longer have.
type IncompleteRollbackError struct {
	To eventlog.Offset // the offset the rollback was undoing to
}

func (e *IncompleteRollbackError) Error() string {
	return fmt.Sprintf("chat: incomplete rollback to offset %d: finish it (RollbackTo) or reset the state", e.To)
}

// Unwrap makes errors.Is(err, ErrIncompleteRollback) true.
func (e *IncompleteRollbackError) Unwrap() error { return ErrIncompleteRollback }

// resultError is the error a stored Result stands for: its text is the
// original message and it unwraps to the sentinel of its code.
type resultError struct {
	sentinel error
	message  string
}

func (e *resultError) Error() string { return e.message }
func (e *resultError) Unwrap() error { return e.sentinel }

// errReadOnly is returned by MemStore writes inside View.
var errReadOnly = errors.New("chat: write in a read-only transaction")
