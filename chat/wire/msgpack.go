package wire

import (
	"encoding/binary"
	"fmt"
	"math"
)

// This file holds the few msgpack primitives the frame envelope needs. The
// envelope is decoded by hand rather than by reflection so that its rules are
// exact (a kind of 257 is an error, not a silent 1), so that a hostile body
// cannot make the decoder allocate more than the bytes it holds, and so that
// no nesting is deep enough to exhaust the stack.

// maxDepth bounds the nesting of maps and arrays in a frame or body. Our
// deepest body (a response holding a list of messages) nests three levels.
const maxDepth = 16

// msgpack type codes used here (see the msgpack spec).
const (
	mpNil      = 0xc0
	mpUnused   = 0xc1
	mpFalse    = 0xc2
	mpTrue     = 0xc3
	mpBin8     = 0xc4
	mpBin16    = 0xc5
	mpBin32    = 0xc6
	mpExt8     = 0xc7
	mpExt16    = 0xc8
	mpExt32    = 0xc9
	mpFloat32  = 0xca
	mpFloat64  = 0xcb
	mpUint8    = 0xcc
	mpUint16   = 0xcd
	mpUint32   = 0xce
	mpUint64   = 0xcf
	mpInt8     = 0xd0
	mpInt16    = 0xd1
	mpInt32    = 0xd2
	mpInt64    = 0xd3
	mpFixExt1  = 0xd4
	mpFixExt16 = 0xd8
	mpStr8     = 0xd9
	mpStr16    = 0xda
	mpStr32    = 0xdb
	mpArray16  = 0xdc
	mpArray32  = 0xdd
	mpMap16    = 0xde
	mpMap32    = 0xdf
)

// mpReader reads msgpack values from an in-memory body.
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

func (r *mpReader) byte1() (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.errorf("unexpected end of body")
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// next returns the following n bytes without copying them.
func (r *mpReader) next(n uint64) ([]byte, error) {
	if n > uint64(r.remaining()) {
		return nil, r.errorf("%d bytes declared, %d left", n, r.remaining())
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

// be reads a big-endian unsigned integer of n (1, 2, 4 or 8) bytes.
func (r *mpReader) be(n int) (uint64, error) {
	s, err := r.next(uint64(n))
	if err != nil {
		return 0, err
	}
	switch n {
	case 1:
		return uint64(s[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(s)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(s)), nil
	default:
		return binary.BigEndian.Uint64(s), nil
	}
}

// peekNil consumes a nil and reports whether there was one.
func (r *mpReader) peekNil() bool {
	if r.off < len(r.b) && r.b[r.off] == mpNil {
		r.off++
		return true
	}
	return false
}

// mapLen reads a map header.
func (r *mpReader) mapLen() (int, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c >= 0x80 && c <= 0x8f:
		n = uint64(c & 0x0f)
	case c == mpMap16:
		n, err = r.be(2)
	case c == mpMap32:
		n, err = r.be(4)
	default:
		return 0, r.errorf("want a map, got type 0x%02x", c)
	}
	if err != nil {
		return 0, err
	}
	// Each entry takes at least two bytes; checking here keeps a forged
	// count from driving a long loop.
	if n > uint64(r.remaining())/2 {
		return 0, r.errorf("map of %d entries in %d bytes", n, r.remaining())
	}
	return int(n), nil
}

// strBytes reads a str value and returns its bytes without copying.
func (r *mpReader) strBytes() ([]byte, error) {
	c, err := r.byte1()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n = uint64(c & 0x1f)
	case c == mpStr8:
		n, err = r.be(1)
	case c == mpStr16:
		n, err = r.be(2)
	case c == mpStr32:
		n, err = r.be(4)
	default:
		return nil, r.errorf("want a string, got type 0x%02x", c)
	}
	if err != nil {
		return nil, err
	}
	return r.next(n)
}

func (r *mpReader) str() (string, error) {
	s, err := r.strBytes()
	return string(s), err
}

// uint reads a non-negative integer of any msgpack width, at most limit.
func (r *mpReader) uint(limit uint64) (uint64, error) {
	start := r.off
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c <= 0x7f:
		n = uint64(c)
	case c >= mpUint8 && c <= mpUint64:
		n, err = r.be(1 << (c - mpUint8))
	case c >= mpInt8 && c <= mpInt64:
		n, err = r.be(1 << (c - mpInt8))
		if err == nil && int64(signExtend(n, 1<<(c-mpInt8))) < 0 {
			r.off = start
			return 0, r.errorf("negative integer")
		}
	default:
		return 0, r.errorf("want an integer, got type 0x%02x", c)
	}
	if err != nil {
		return 0, err
	}
	if n > limit {
		r.off = start
		return 0, r.errorf("integer %d over %d", n, limit)
	}
	return n, nil
}

// signExtend interprets the low size bytes of v as a two's complement number.
func signExtend(v uint64, size int) uint64 {
	shift := 64 - 8*size
	return uint64(int64(v<<shift) >> shift)
}

// skip steps over one complete value, checking that it is well formed and
// that every declared length fits in the body. It allocates nothing.
func (r *mpReader) skip(depth int) error {
	if depth > maxDepth {
		return r.errorf("nested deeper than %d", maxDepth)
	}
	c, err := r.byte1()
	if err != nil {
		return err
	}
	var n uint64 // bytes to skip, or entries for containers
	switch {
	case c <= 0x7f || c >= 0xe0, c == mpNil, c == mpFalse, c == mpTrue:
		return nil
	case c >= 0x80 && c <= 0x8f:
		return r.skipN(2*uint64(c&0x0f), depth)
	case c >= 0x90 && c <= 0x9f:
		return r.skipN(uint64(c&0x0f), depth)
	case c >= 0xa0 && c <= 0xbf:
		n = uint64(c & 0x1f)
	case c == mpUnused:
		return r.errorf("reserved type 0xc1")
	case c == mpBin8 || c == mpStr8:
		n, err = r.be(1)
	case c == mpBin16 || c == mpStr16:
		n, err = r.be(2)
	case c == mpBin32 || c == mpStr32:
		n, err = r.be(4)
	case c == mpExt8 || c == mpExt16 || c == mpExt32:
		n, err = r.be(1 << (c - mpExt8))
		n++ // the ext type byte
	case c == mpFloat32:
		n = 4
	case c == mpFloat64:
		n = 8
	case c >= mpUint8 && c <= mpUint64:
		n = 1 << (c - mpUint8)
	case c >= mpInt8 && c <= mpInt64:
		n = 1 << (c - mpInt8)
	case c >= mpFixExt1 && c <= mpFixExt16:
		n = 1 + 1<<(c-mpFixExt1)
	case c == mpArray16:
		if n, err = r.be(2); err != nil {
			return err
		}
		return r.skipN(n, depth)
	case c == mpArray32:
		if n, err = r.be(4); err != nil {
			return err
		}
		return r.skipN(n, depth)
	case c == mpMap16:
		if n, err = r.be(2); err != nil {
			return err
		}
		return r.skipN(2*n, depth)
	default: // mpMap32
		if n, err = r.be(4); err != nil {
			return err
		}
		return r.skipN(2*n, depth)
	}
	if err != nil {
		return err
	}
	_, err = r.next(n)
	return err
}

// skipN skips the n values of a container at depth.
func (r *mpReader) skipN(n uint64, depth int) error {
	// Every value takes at least one byte.
	if n > uint64(r.remaining()) {
		return r.errorf("container of %d values in %d bytes", n, r.remaining())
	}
	for range n {
		if err := r.skip(depth + 1); err != nil {
			return err
		}
	}
	return nil
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

// Appenders write the compact encodings, the same bytes as
// github.com/vmihailenco/msgpack/v5 with UseCompactInts(true).

func appendMapHeader(b []byte, n int) []byte {
	if n < 16 {
		return append(b, 0x80|byte(n))
	}
	return binary.BigEndian.AppendUint16(append(b, mpMap16), uint16(n))
}

func appendStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, mpStr8, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, mpStr16), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, mpStr32), uint32(n))
	}
	return append(b, s...)
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, mpUint8, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mpUint16), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, mpUint32), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, mpUint64), v)
	}
}
