package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// checkMsgpack verifies that b is one well-formed msgpack value whose every
// declared length fits in the bytes that follow it, nested at most
// maxMsgpackDepth deep, without allocating. The msgpack library sizes slices
// from the declared length before reading the elements (v5.4.1), so without
// this a corrupt or hostile frame claiming 4G elements would exhaust memory;
// after it, decoding allocates in proportion to the input.
func checkMsgpack(b []byte) error {
	c := msgpackChecker{b: b}
	if err := c.value(0); err != nil {
		return err
	}
	if c.off != len(b) {
		return fmt.Errorf("%d trailing bytes after the message", len(b)-c.off)
	}
	return nil
}

// maxMsgpackDepth bounds nesting (a Message nests 4 deep: message, records,
// record, fields).
const maxMsgpackDepth = 16

var errTruncated = errors.New("truncated msgpack")

type msgpackChecker struct {
	b   []byte
	off int
}

func (c *msgpackChecker) take(n uint64) error {
	if n > uint64(len(c.b)-c.off) {
		return fmt.Errorf("%w: %d bytes declared, %d left", errTruncated, n, len(c.b)-c.off)
	}
	c.off += int(n)
	return nil
}

func (c *msgpackChecker) uint(size int) (uint64, error) {
	if size > len(c.b)-c.off {
		return 0, errTruncated
	}
	var v uint64
	switch size {
	case 1:
		v = uint64(c.b[c.off])
	case 2:
		v = uint64(binary.BigEndian.Uint16(c.b[c.off:]))
	case 4:
		v = uint64(binary.BigEndian.Uint32(c.b[c.off:]))
	}
	c.off += size
	return v, nil
}

// items checks n nested values; each takes at least one byte, so a count
// beyond the remaining bytes is rejected before looking at any.
func (c *msgpackChecker) items(n uint64, depth int) error {
	if n > uint64(len(c.b)-c.off) {
		return fmt.Errorf("%w: %d elements declared, %d bytes left", errTruncated, n, len(c.b)-c.off)
	}
	for range n {
		if err := c.value(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

func (c *msgpackChecker) value(depth int) error {
	if depth > maxMsgpackDepth {
		return fmt.Errorf("msgpack nested deeper than %d", maxMsgpackDepth)
	}
	if c.off >= len(c.b) {
		return errTruncated
	}
	t := c.b[c.off]
	c.off++
	switch {
	case t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3: // fixint, nil, bool
		return nil
	case t >= 0x80 && t <= 0x8f: // fixmap
		return c.items(2*uint64(t&0x0f), depth)
	case t >= 0x90 && t <= 0x9f: // fixarray
		return c.items(uint64(t&0x0f), depth)
	case t >= 0xa0 && t <= 0xbf: // fixstr
		return c.take(uint64(t & 0x1f))
	}
	switch t {
	case 0xcc, 0xd0:
		return c.take(1)
	case 0xcd, 0xd1:
		return c.take(2)
	case 0xca, 0xce, 0xd2:
		return c.take(4)
	case 0xcb, 0xcf, 0xd3:
		return c.take(8)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16 (plus the type byte)
		return c.take(1 + 1<<(t-0xd4))
	case 0xc4, 0xd9, 0xc7: // bin 8, str 8, ext 8
		return c.sized(1, t == 0xc7)
	case 0xc5, 0xda, 0xc8: // bin 16, str 16, ext 16
		return c.sized(2, t == 0xc8)
	case 0xc6, 0xdb, 0xc9: // bin 32, str 32, ext 32
		return c.sized(4, t == 0xc9)
	case 0xdc, 0xdd: // array 16, array 32
		n, err := c.uint(lenSize(t == 0xdd))
		if err != nil {
			return err
		}
		return c.items(n, depth)
	case 0xde, 0xdf: // map 16, map 32
		n, err := c.uint(lenSize(t == 0xdf))
		if err != nil {
			return err
		}
		return c.items(2*n, depth)
	}
	return fmt.Errorf("invalid msgpack type byte 0x%02x", t)
}

// lenSize is the width of a 16- or 32-bit array or map length.
func lenSize(wide bool) int {
	if wide {
		return 4
	}
	return 2
}

// sized skips a bin, str or ext value whose length takes size bytes (ext
// values have a type byte more).
func (c *msgpackChecker) sized(size int, ext bool) error {
	n, err := c.uint(size)
	if err != nil {
		return err
	}
	if ext {
		n++
	}
	return c.take(n)
}
