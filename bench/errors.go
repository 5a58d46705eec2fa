package bench

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidOptions is wrapped by Run's error for options it cannot use.
	ErrInvalidOptions = errors.New("bench: invalid options")
	// ErrNoPrimary is wrapped when no replica answered as primary in time.
	ErrNoPrimary = errors.New("bench: no primary")
)

// PhaseError is the failure of one phase of a run (e.g. "failover"), so that
// the reader knows how far the benchmark got.
type PhaseError struct {
	Phase string
	Err   error
}

// Error returns "PHASE phase: ERR".
func (e *PhaseError) Error() string { return fmt.Sprintf("%s phase: %v", e.Phase, e.Err) }

// Unwrap returns the cause.
func (e *PhaseError) Unwrap() error { return e.Err }
