package wire

import (
	"errors"
	"fmt"
)

// Sentinel errors of the frame codec. Test with errors.Is.
//
// Any error from ReadFrame leaves the stream at an unknown position (or is
// about a frame the peer should never have sent), so the connection must be
// closed after it; see [Conn.ReadFrame].
var (
	// ErrFrameTooLarge is wrapped by *FrameSizeError: a frame declared or
	// encoded longer than the maximum frame size.
	ErrFrameTooLarge = errors.New("wire: frame too large")
	// ErrEmptyFrame is returned for a frame whose declared length is 0: no
	// valid body is empty, and rejecting it keeps a stream of zeros from
	// spinning a reader.
	ErrEmptyFrame = errors.New("wire: empty frame")
	// ErrTruncatedFrame is returned when the stream ends inside a frame.
	ErrTruncatedFrame = errors.New("wire: truncated frame")
	// ErrMalformedFrame is wrapped by *MalformedError: a frame body that is
	// not a valid envelope (bad msgpack, trailing bytes, unknown kind, ...).
	ErrMalformedFrame = errors.New("wire: malformed frame")
	// ErrMalformedBody is returned by Decode for a body that is not a valid
	// msgpack value of the expected shape.
	ErrMalformedBody = errors.New("wire: malformed body")
)

// FrameSizeError reports a frame over the size limit. When reading, Size is
// the declared length and nothing of the body has been read or allocated.
type FrameSizeError struct {
	Size uint64 // body length in bytes
	Max  uint32 // the limit in force
}

func (e *FrameSizeError) Error() string {
	return fmt.Sprintf("wire: frame of %d bytes over the %d-byte limit", e.Size, e.Max)
}

// Unwrap makes errors.Is(err, ErrFrameTooLarge) true.
func (e *FrameSizeError) Unwrap() error { return ErrFrameTooLarge }

// MalformedError reports a frame body that does not decode to a valid
// envelope, or a Frame that may not be sent.
type MalformedError struct {
	Offset int // byte offset in the body where decoding stopped (0 when encoding)
	Reason string
}

func (e *MalformedError) Error() string {
	return fmt.Sprintf("wire: malformed frame at byte %d: %s", e.Offset, e.Reason)
}

// Unwrap makes errors.Is(err, ErrMalformedFrame) true.
func (e *MalformedError) Unwrap() error { return ErrMalformedFrame }
