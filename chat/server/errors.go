package server

import "errors"

// Errors a Replicator returns that the server maps to retryable wire codes.
// Replicator implementations wrap them.
var (
	// ErrNotPrimary means this replica does not accept writes; the client
	// should go to Status().Primary.
	ErrNotPrimary = errors.New("server: not the primary")
	// ErrUnavailable means the replica cannot serve now (for instance it
	// restarted and waits to hear from its peers); Status().Waiting says why.
	// It means "not applied": a Replicator returns it only for records it
	// never took.
	ErrUnavailable = errors.New("server: replica unavailable")
	// ErrOutcomeUnknown means the replicator took the records and then could
	// not see them through (it stepped down, stopped, or lost them to a
	// failover): they may yet commit. The client must retry with the same
	// seq. The error's text says what happened.
	ErrOutcomeUnknown = errors.New("server: outcome unknown")
)
