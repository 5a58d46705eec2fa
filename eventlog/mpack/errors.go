package mpack

import (
	"errors"
	"fmt"
)

var (
	// ErrTruncated is wrapped by an *Error when the input ends before the
	// value does, or declares more bytes or elements than it holds.
	ErrTruncated = errors.New("mpack: truncated")
	// ErrInvalid is wrapped by an *Error for input that is not the value
	// asked for: another type, an integer out of range, nesting too deep or
	// the reserved code 0xc1.
	ErrInvalid = errors.New("mpack: invalid")
)

// Error reports where and why a Reader stopped.
type Error struct {
	Offset int    // byte offset in the Reader's input of the value at fault
	Reason string // what was wrong
	Err    error  // ErrTruncated or ErrInvalid
}

// Error formats as "byte N: reason", the form the codecs' callers print.
func (e *Error) Error() string { return fmt.Sprintf("byte %d: %s", e.Offset, e.Reason) }

// Unwrap returns ErrTruncated or ErrInvalid.
func (e *Error) Unwrap() error { return e.Err }
