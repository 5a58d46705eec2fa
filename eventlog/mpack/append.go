package mpack

import (
	"encoding/binary"
	"math"
)

// msgpack type codes (see the msgpack spec).
const (
	codeNil     = 0xc0
	codeFalse   = 0xc2
	codeTrue    = 0xc3
	codeBin8    = 0xc4
	codeBin16   = 0xc5
	codeBin32   = 0xc6
	codeExt8    = 0xc7
	codeExt32   = 0xc9
	codeFloat32 = 0xca
	codeFloat64 = 0xcb
	codeUint8   = 0xcc
	codeUint16  = 0xcd
	codeUint32  = 0xce
	codeUint64  = 0xcf
	codeInt8    = 0xd0
	codeInt16   = 0xd1
	codeInt32   = 0xd2
	codeInt64   = 0xd3
	codeFixExt1 = 0xd4
	codeFixExt8 = 0xd8 // fixext 16
	codeStr8    = 0xd9
	codeStr16   = 0xda
	codeStr32   = 0xdb
	codeArray16 = 0xdc
	codeArray32 = 0xdd
	codeMap16   = 0xde
	codeMap32   = 0xdf
)

// AppendNil appends nil, as msgpack writes a nil pointer, slice or map.
func AppendNil(b []byte) []byte { return append(b, codeNil) }

// AppendBool appends true or false.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, codeTrue)
	}
	return append(b, codeFalse)
}

// AppendUint8 appends v at full width (0xcc + 1 byte), as reflection
// writes a uint8 field.
func AppendUint8(b []byte, v uint8) []byte { return append(b, codeUint8, v) }

// AppendUint32 appends v at full width (0xce + 4 bytes), as reflection
// writes a uint32 field.
func AppendUint32(b []byte, v uint32) []byte {
	return binary.BigEndian.AppendUint32(append(b, codeUint32), v)
}

// AppendUint64 appends v at full width (0xcf + 8 bytes), as reflection
// writes a uint64 field.
func AppendUint64(b []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(append(b, codeUint64), v)
}

// AppendInt64 appends v at full width (0xd3 + 8 bytes), as reflection
// writes an int64 field.
func AppendInt64(b []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(append(b, codeInt64), uint64(v))
}

// AppendUint appends v in its shortest form, as msgpack's EncodeUint does.
func AppendUint(b []byte, v uint64) []byte {
	switch {
	case v <= math.MaxInt8:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, codeUint8, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, codeUint16), uint16(v))
	case v <= math.MaxUint32:
		return AppendUint32(b, uint32(v))
	}
	return AppendUint64(b, v)
}

// AppendInt appends v in its shortest form, as msgpack's EncodeInt does (and
// so reflection for an int field): a non-negative v as AppendUint writes it.
func AppendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return AppendUint(b, uint64(v))
	case v >= -32: // negative fixint
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, codeInt8, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, codeInt16), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, codeInt32), uint32(v))
	}
	return AppendInt64(b, v)
}

// StrSize is the encoded length of a string of n bytes.
func StrSize(n int) int {
	switch {
	case n < 32:
		return 1 + n
	case n <= math.MaxUint8:
		return 2 + n
	case n <= math.MaxUint16:
		return 3 + n
	}
	return 5 + n
}

// AppendStr appends s in its shortest str form (fixstr, str8, str16, str32).
func AppendStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, codeStr8, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, codeStr16), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, codeStr32), uint32(n))
	}
	return append(b, s...)
}

// BinSize is the encoded length of a non-nil []byte of n bytes.
func BinSize(n int) int {
	switch {
	case n <= math.MaxUint8:
		return 2 + n
	case n <= math.MaxUint16:
		return 3 + n
	}
	return 5 + n
}

// AppendBinHeader appends the header of a bin value of n bytes (bin8, bin16
// or bin32); the caller appends the bytes.
func AppendBinHeader(b []byte, n int) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(b, codeBin8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, codeBin16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, codeBin32), uint32(n))
}

// AppendMapHeader appends the header of a map of n entries (fixmap, map16
// or map32); the caller appends n keys and values.
func AppendMapHeader(b []byte, n int) []byte { return appendLen(b, n, 0x80, codeMap16) }

// AppendArrayHeader appends the header of an array of n elements (fixarray,
// array16 or array32); the caller appends the elements.
func AppendArrayHeader(b []byte, n int) []byte { return appendLen(b, n, 0x90, codeArray16) }

// appendLen writes a map or array header: fix|n below 16, else the 16-bit
// form, else the 32-bit one (whose code follows the 16-bit one).
func appendLen(b []byte, n int, fix, code16 byte) []byte {
	switch {
	case n < 16:
		return append(b, fix|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, code16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, code16+1), uint32(n))
}
