package wire

import (
	"errors"
	"fmt"

	"github.com/replichat/replichat/eventlog/mpack"
)

// This file adapts the msgpack primitives of package mpack to the frame
// envelope. The envelope is decoded by hand rather than by reflection so that
// its rules are exact (a kind of 257 is an error, not a silent 1), so that a
// hostile body cannot make the decoder allocate more than the bytes it holds,
// and so that no nesting is deep enough to exhaust the stack.

// maxDepth bounds the nesting of maps and arrays in a frame or body. Our
// deepest body (a response holding a list of messages) nests three levels.
const maxDepth = 16

// mpReader reads msgpack values from an in-memory body with an
// mpack.Reader, turning its errors into *MalformedError at body offsets.
//
// Invariant: 0 <= off <= len(b).
type mpReader struct {
	b   []byte
	off int
}

func (r *mpReader) errorf(format string, args ...any) error {
	return &MalformedError{Offset: r.off, Reason: fmt.Sprintf(format, args...)}
}

func (r *mpReader) remaining() int { return len(r.b) - r.off }

// reader returns an mpack.Reader over the bytes left; done moves past what
// it read.
func (r *mpReader) reader() *mpack.Reader { return mpack.NewReader(r.b[r.off:]) }

// done advances r past what m read and converts m's error, if any.
func (r *mpReader) done(m *mpack.Reader, err error) error {
	if err != nil {
		return r.malformed(m, err)
	}
	r.off += m.Offset()
	return nil
}

// malformed is done for an error; out of line so that done inlines.
func (r *mpReader) malformed(m *mpack.Reader, err error) error {
	start := r.off
	r.off += m.Offset()
	var e *mpack.Error
	if errors.As(err, &e) {
		return &MalformedError{Offset: start + e.Offset, Reason: e.Reason}
	}
	return &MalformedError{Offset: r.off, Reason: err.Error()}
}

// peekNil consumes a nil and reports whether there was one.
func (r *mpReader) peekNil() bool {
	m := r.reader()
	isNil := m.Nil()
	_ = r.done(m, nil)
	return isNil
}

// mapLen reads a map header; the count is known to fit in the body.
func (r *mpReader) mapLen() (int, error) {
	m := r.reader()
	n, err := m.MapLen()
	return n, r.done(m, err)
}

// strBytes reads a str value and returns its bytes without copying.
func (r *mpReader) strBytes() ([]byte, error) {
	m := r.reader()
	s, err := m.Str()
	return s, r.done(m, err)
}

func (r *mpReader) str() (string, error) {
	s, err := r.strBytes()
	return string(s), err
}

// uint reads a non-negative integer of any msgpack width, at most limit.
func (r *mpReader) uint(limit uint64) (uint64, error) {
	m := r.reader()
	v, err := m.Uint(limit)
	return v, r.done(m, err)
}

// skip steps over one complete value at depth, checking that it is well
// formed and that every declared length fits in the body. It allocates
// nothing.
func (r *mpReader) skip(depth int) error {
	m := r.reader()
	return r.done(m, m.Skip(maxDepth-depth))
}

// checkValue reports whether b holds exactly one well-formed msgpack value.
func checkValue(b []byte) error {
	r := mpReader{b: b}
	if err := r.skip(1); err != nil {
		return err
	}
	if r.remaining() != 0 {
		return r.errorf("%d trailing bytes", r.remaining())
	}
	return nil
}
