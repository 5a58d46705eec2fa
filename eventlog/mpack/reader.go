package mpack

import (
	"encoding/binary"
	"fmt"
)

// Reader reads msgpack values from an in-memory input. Every read checks
// the declared lengths against the bytes left, so no input makes it panic,
// and it allocates only for errors. A failed read leaves the Reader at the
// value it could not read, and its *Error carries that position.
//
// Reads that return []byte return slices of the input, not copies.
type Reader struct {
	b []byte
	// off is the position of the next byte to read.
	// Invariant: 0 <= off <= len(b).
	off int
}

// NewReader returns a Reader at the start of b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Offset returns the position of the next byte to read.
func (r *Reader) Offset() int { return r.off }

// Len returns the number of bytes left.
func (r *Reader) Len() int { return len(r.b) - r.off }

// Rest returns the bytes left, without consuming them.
func (r *Reader) Rest() []byte { return r.b[r.off:] }

// Next consumes and returns the next n bytes.
func (r *Reader) Next(n int) ([]byte, error) {
	if uint(n) > uint(len(r.b)-r.off) { // a negative n is huge
		return nil, r.short(uint64(n))
	}
	r.off += n
	return r.b[r.off-n : r.off], nil
}

// next is Next for a length read from the input.
func (r *Reader) next(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.off) {
		return nil, r.short(n)
	}
	p := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return p, nil
}

// short reports that n bytes were wanted and fewer are left; out of line
// so that its callers inline.
func (r *Reader) short(n uint64) error {
	return &Error{Offset: r.off, Err: ErrTruncated,
		Reason: fmt.Sprintf("truncated: %d bytes wanted, %d left", n, len(r.b)-r.off)}
}

// invalid reports a value at off that is not what was asked for.
func invalid(off int, format string, args ...any) error {
	return &Error{Offset: off, Err: ErrInvalid, Reason: fmt.Sprintf(format, args...)}
}

// wrongType steps back over the type byte c just read and reports it.
func (r *Reader) wrongType(want string, c byte) error {
	r.off--
	return invalid(r.off, "want %s, have type 0x%02x", want, c)
}

// Code consumes and returns the next type byte.
func (r *Reader) Code() (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.short(1)
	}
	r.off++
	return r.b[r.off-1], nil
}

// Nil consumes a nil and reports whether the next value was one. Callers
// for which nil stands for a zero value check it before the typed read.
func (r *Reader) Nil() bool {
	if r.off < len(r.b) && r.b[r.off] == codeNil {
		r.off++
		return true
	}
	return false
}

// be reads a big-endian unsigned integer of size 1, 2, 4 or 8 bytes.
func (r *Reader) be(size uint64) (uint64, error) {
	p, err := r.next(size)
	if err != nil {
		return 0, err
	}
	switch size {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), nil
	}
	return binary.BigEndian.Uint64(p), nil
}

// MapLen reads a map header (fixmap, map16, map32; not nil) and returns its
// number of entries. A count that cannot fit in the bytes left (an entry
// takes two at least) is ErrTruncated, so that a forged count cannot drive
// a long loop or a large allocation.
func (r *Reader) MapLen() (int, error) {
	c, err := r.Code()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == 0x80:
		n = uint64(c & 0x0f)
	case c == codeMap16 || c == codeMap32:
		if n, err = r.be(2 << (c - codeMap16)); err != nil {
			return 0, err
		}
	default:
		return 0, r.wrongType("a map", c)
	}
	return r.count(n, 2)
}

// ArrayLen reads an array header (fixarray, array16, array32; not nil) and
// returns its number of elements, which fit in the bytes left (see MapLen).
func (r *Reader) ArrayLen() (int, error) {
	c, err := r.Code()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == 0x90:
		n = uint64(c & 0x0f)
	case c == codeArray16 || c == codeArray32:
		if n, err = r.be(2 << (c - codeArray16)); err != nil {
			return 0, err
		}
	default:
		return 0, r.wrongType("an array", c)
	}
	return r.count(n, 1)
}

// count checks that n values of at least size bytes each fit in the bytes left.
func (r *Reader) count(n, size uint64) (int, error) {
	if left := uint64(len(r.b) - r.off); n > left/size {
		return 0, &Error{Offset: r.off, Err: ErrTruncated,
			Reason: fmt.Sprintf("truncated: %d values declared, %d bytes left", n, left)}
	}
	return int(n), nil
}

// Uint64 reads any msgpack integer (not nil) as msgpack's DecodeUint64
// does: a signed value keeps its two's complement bits, so that int64
// fields can use it too.
func (r *Reader) Uint64() (uint64, error) { return r.uint64(false) }

// Uint64OrNil is Uint64 that reads nil as 0, as msgpack's reflection
// decodes nil into an integer field.
func (r *Reader) Uint64OrNil() (uint64, error) { return r.uint64(true) }

func (r *Reader) uint64(nilOK bool) (uint64, error) {
	if p := r.b[r.off:]; len(p) >= 9 && (p[0] == codeUint64 || p[0] == codeInt64) { // the full-width form
		r.off += 9
		return binary.BigEndian.Uint64(p[1:]), nil
	}
	return r.uint64Slow(nilOK)
}

// uint64Slow is uint64 for the forms other than the full-width one; apart
// so that the common case runs in a small frame.
func (r *Reader) uint64Slow(nilOK bool) (uint64, error) {
	if nilOK && r.Nil() {
		return 0, nil
	}
	v, _, err := r.integer()
	return v, err
}

// Uint reads a non-negative integer of any msgpack form (not nil) no
// larger than limit. On error the Reader stays at the integer.
func (r *Reader) Uint(limit uint64) (uint64, error) {
	start := r.off
	v, neg, err := r.integer()
	switch {
	case err != nil:
		return 0, err
	case neg:
		r.off = start
		return 0, invalid(start, "negative integer %d", int64(v))
	case v > limit:
		r.off = start
		return 0, invalid(start, "integer %d over %d", v, limit)
	}
	return v, nil
}

// integer reads any integer form as its two's complement bits and whether
// it is negative.
func (r *Reader) integer() (v uint64, neg bool, err error) {
	c, err := r.Code()
	if err != nil {
		return 0, false, err
	}
	switch {
	case c <= 0x7f:
		return uint64(c), false, nil
	case c >= 0xe0: // negative fixint
		return uint64(int64(int8(c))), true, nil
	case c >= codeUint8 && c <= codeUint64:
		v, err = r.be(1 << (c - codeUint8))
		return v, false, err
	case c >= codeInt8 && c <= codeInt64:
		size := uint64(1) << (c - codeInt8)
		if v, err = r.be(size); err != nil {
			return 0, false, err
		}
		shift := 64 - 8*size // sign-extend
		v = uint64(int64(v<<shift) >> shift)
		return v, int64(v) < 0, nil
	}
	return 0, false, r.wrongType("an integer", c)
}

// Bool reads true or false (not nil).
func (r *Reader) Bool() (bool, error) {
	c, err := r.Code()
	switch {
	case err != nil:
		return false, err
	case c == codeFalse:
		return false, nil
	case c == codeTrue:
		return true, nil
	}
	return false, r.wrongType("a bool", c)
}

// Str reads a str value (not bin, not nil). An empty string is an empty,
// non-nil slice.
func (r *Reader) Str() ([]byte, error) { return r.bytes(false, false) }

// Bytes reads a str or bin value (not nil), as msgpack's DecodeBytes and
// DecodeString both accept either. An empty value is an empty, non-nil
// slice.
func (r *Reader) Bytes() ([]byte, error) { return r.bytes(true, false) }

// BytesOrNil is Bytes that reads nil as a nil slice, as msgpack's
// reflection decodes nil into a string or []byte field; an empty value
// stays distinct from it.
func (r *Reader) BytesOrNil() ([]byte, error) { return r.bytes(true, true) }

func (r *Reader) bytes(bin, nilOK bool) ([]byte, error) {
	if p := r.b[r.off:]; len(p) > 0 && p[0]&0xe0 == 0xa0 && int(p[0]&0x1f) < len(p) { // fixstr: keys, mostly
		n := int(p[0] & 0x1f)
		r.off += 1 + n
		return p[1 : 1+n], nil
	}
	return r.bytesSlow(bin, nilOK)
}

// bytesSlow is bytes for the forms other than fixstr; apart so that the
// common case runs in a small frame.
func (r *Reader) bytesSlow(bin, nilOK bool) ([]byte, error) {
	c, err := r.Code()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c >= codeStr8 && c <= codeStr32:
		n, err = r.be(1 << (c - codeStr8))
	case bin && c >= codeBin8 && c <= codeBin32:
		n, err = r.be(1 << (c - codeBin8))
	case nilOK && c == codeNil:
		return nil, nil
	case bin:
		return nil, r.wrongType("a string or bytes", c)
	default:
		return nil, r.wrongType("a string", c)
	}
	if err != nil {
		return nil, err
	}
	return r.next(n)
}

// Skip passes over one value of any type, checking that it is well formed
// and that every declared length fits. Maps and arrays may nest maxDepth
// levels below the value, so that hostile input cannot exhaust the stack;
// Skip(0) accepts only a scalar or an empty container.
func (r *Reader) Skip(maxDepth int) error {
	if maxDepth < 0 {
		return invalid(r.off, "nested too deep")
	}
	c, err := r.Code()
	if err != nil {
		return err
	}
	var n uint64 // bytes to pass (scalars) or values to skip (containers)
	switch {
	case c <= 0x7f || c >= 0xe0 || c == codeNil || c == codeFalse || c == codeTrue: // fixint, nil, bool
		return nil
	case c <= 0x8f: // fixmap
		return r.skipN(2*uint64(c&0x0f), maxDepth)
	case c <= 0x9f: // fixarray
		return r.skipN(uint64(c&0x0f), maxDepth)
	case c <= 0xbf: // fixstr
		n = uint64(c & 0x1f)
	case c >= codeBin8 && c <= codeBin32:
		n, err = r.be(1 << (c - codeBin8))
	case c >= codeStr8 && c <= codeStr32:
		n, err = r.be(1 << (c - codeStr8))
	case c >= codeExt8 && c <= codeExt32: // a length, then a type byte
		n, err = r.be(1 << (c - codeExt8))
		n++
	case c == codeFloat32:
		n = 4
	case c == codeFloat64:
		n = 8
	case c >= codeUint8 && c <= codeUint64:
		n = 1 << (c - codeUint8)
	case c >= codeInt8 && c <= codeInt64:
		n = 1 << (c - codeInt8)
	case c >= codeFixExt1 && c <= codeFixExt8: // fixext 1..16, plus the type byte
		n = 1 + 1<<(c-codeFixExt1)
	case c == codeArray16 || c == codeArray32:
		if n, err = r.be(2 << (c - codeArray16)); err != nil {
			return err
		}
		return r.skipN(n, maxDepth)
	case c == codeMap16 || c == codeMap32:
		if n, err = r.be(2 << (c - codeMap16)); err != nil {
			return err
		}
		return r.skipN(2*n, maxDepth)
	default: // 0xc1, reserved
		r.off--
		return invalid(r.off, "reserved type 0x%02x", c)
	}
	if err != nil {
		return err
	}
	_, err = r.next(n)
	return err
}

// skipN skips the n values of a container one level down.
func (r *Reader) skipN(n uint64, maxDepth int) error {
	if _, err := r.count(n, 1); err != nil {
		return err
	}
	for range n {
		if err := r.Skip(maxDepth - 1); err != nil {
			return err
		}
	}
	return nil
}
