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
	ErrUnavailable = errors.New("server: replica unavailable")
)
