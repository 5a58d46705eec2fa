package eventlog

// A hand-written msgpack codec for Record. Catch-up moves hundreds of
// thousands of records through it (read from Badger, framed for a peer,
// decoded by the backup); msgpack's reflection spent most of that time.
//
// The bytes are exactly those msgpack/v5 (v5.4.1, default options) writes by
// reflection for the tagged struct, because they are the on-disk format
// (under a CRC) and replicas must hold byte-identical logs:
//   - a map of the fields in declaration order, "client" omitted when empty
//     and "seq" when 0, so its header is a fixmap of 5, 6 or 7 entries;
//   - keys as fixstr;
//   - Offset, Epoch and Seq as uint64 (0xcf + 8 bytes) and Time as int64
//     (0xd3 + 8 bytes) whatever their value: reflection encodes sized
//     integer kinds at full width unless UseCompactInts is set;
//   - strings in their shortest str form (fixstr, str8, str16, str32);
//   - Data nil as nil (0xc0), otherwise bin8/16/32, so an empty non-nil
//     Data stays distinct from a nil one.
//
// Decoding accepts what reflection accepted: keys in any order, unknown keys
// (skipped), any integer form for an integer field, nil for a zero field, str
// or bin for a string or bytes. Anything else is an error, never a panic.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/vmihailenco/msgpack/v5"
)

// Encoded keys (fixstr header + name), in field order.
const (
	keyOffsetMsgpack = "\xa6offset"
	keyEpochMsgpack  = "\xa5epoch"
	keyTypeMsgpack   = "\xa4type"
	keyClientMsgpack = "\xa6client"
	keySeqMsgpack    = "\xa3seq"
	keyTimeMsgpack   = "\xa4time"
	keyDataMsgpack   = "\xa4data"
)

// msgpack type bytes used by the codec.
const (
	mpNil    = 0xc0
	mpBin8   = 0xc4
	mpBin16  = 0xc5
	mpBin32  = 0xc6
	mpUint8  = 0xcc
	mpUint16 = 0xcd
	mpUint32 = 0xce
	mpUint64 = 0xcf
	mpInt8   = 0xd0
	mpInt16  = 0xd1
	mpInt32  = 0xd2
	mpInt64  = 0xd3
	mpStr8   = 0xd9
	mpStr16  = 0xda
	mpStr32  = 0xdb
	mpMap16  = 0xde
	mpMap32  = 0xdf
)

// MsgpackSize returns the length of r's msgpack form, len(r.AppendMsgpack(nil)),
// so that a caller encoding many records can size its buffer once.
func (r Record) MsgpackSize() int {
	// Map header, then each key and its value; the integers are 9 bytes.
	n := 1 + len(keyOffsetMsgpack) + 9 + len(keyEpochMsgpack) + 9 +
		len(keyTypeMsgpack) + strSize(len(r.Type)) + len(keyTimeMsgpack) + 9 + len(keyDataMsgpack)
	if r.ClientID != "" {
		n += len(keyClientMsgpack) + strSize(len(r.ClientID))
	}
	if r.Seq != 0 {
		n += len(keySeqMsgpack) + 9
	}
	if r.Data == nil {
		return n + 1
	}
	return n + binSize(len(r.Data))
}

// AppendMsgpack appends r's msgpack form to dst: the bytes msgpack.Marshal
// writes for it (see the top of recordcodec.go), which are what the log
// stores and what replicas exchange.
func (r Record) AppendMsgpack(dst []byte) []byte {
	dst = slices.Grow(dst, r.MsgpackSize())
	fields := 5
	if r.ClientID != "" {
		fields++
	}
	if r.Seq != 0 {
		fields++
	}
	dst = append(dst, 0x80|byte(fields))
	dst = appendUint64(append(dst, keyOffsetMsgpack...), uint64(r.Offset))
	dst = appendUint64(append(dst, keyEpochMsgpack...), uint64(r.Epoch))
	dst = appendStr(append(dst, keyTypeMsgpack...), r.Type)
	if r.ClientID != "" {
		dst = appendStr(append(dst, keyClientMsgpack...), r.ClientID)
	}
	if r.Seq != 0 {
		dst = appendUint64(append(dst, keySeqMsgpack...), r.Seq)
	}
	dst = append(dst, keyTimeMsgpack...)
	dst = binary.BigEndian.AppendUint64(append(dst, mpInt64), uint64(r.Time))
	dst = append(dst, keyDataMsgpack...)
	if r.Data == nil {
		return append(dst, mpNil)
	}
	return append(appendBinHeader(dst, len(r.Data)), r.Data...)
}

// ParseMsgpack decodes the msgpack record at the start of b into r and
// returns the bytes after it. Fields absent from b are zero. See the top of
// recordcodec.go for what is accepted; on error r is unspecified.
//
// r.Data never aliases b: like msgpack's reflection, ParseMsgpack copies the
// payload into r.Data's array when it has the capacity, else into a new one.
// It also keeps r.Type and r.ClientID when they equal the decoded strings.
// Both let a caller decoding many records share allocations between them;
// a zero r gets fresh ones.
func (r *Record) ParseMsgpack(b []byte) (rest []byte, err error) {
	d := mpReader{b: b}
	n, err := d.mapLen()
	if err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	old := *r
	*r = Record{}
	for range n {
		key, err := d.str()
		if err != nil {
			return nil, fmt.Errorf("decode record key: %w", err)
		}
		if err := r.parseField(&d, key, &old); err != nil {
			return nil, fmt.Errorf("decode record field %q: %w", key, err)
		}
	}
	return b[d.off:], nil
}

// parseField decodes the value of key into r, reusing old's memory.
func (r *Record) parseField(d *mpReader, key []byte, old *Record) error {
	var err error
	switch string(key) {
	case "offset":
		var v uint64
		v, err = d.uint()
		r.Offset = Offset(v)
	case "epoch":
		var v uint64
		v, err = d.uint()
		r.Epoch = Epoch(v)
	case "type":
		var s []byte
		s, err = d.str()
		r.Type = reuseString(old.Type, s)
	case "client":
		var s []byte
		s, err = d.str()
		r.ClientID = reuseString(old.ClientID, s)
	case "seq":
		r.Seq, err = d.uint()
	case "time":
		var v uint64
		v, err = d.uint()
		r.Time = int64(v)
	case "data":
		var s []byte
		s, err = d.str()
		r.Data = copyBytes(old.Data, s)
	default:
		err = d.skip(0)
	}
	return err
}

// reuseString returns old if it equals s (saving an allocation), else s as a
// new string.
func reuseString(old string, s []byte) string {
	if old == string(s) { // compiled without a conversion
		return old
	}
	return string(s)
}

// copyBytes copies s into dst's array if it has the capacity, else into a
// new one. As with reflection, nil stays nil and empty stays empty, not nil,
// so that the record re-encodes to the same bytes.
func copyBytes(dst, s []byte) []byte {
	if s == nil {
		return nil
	}
	dst = dst[:0]
	if dst == nil {
		dst = []byte{}
	}
	return append(dst, s...)
}

// EncodeMsgpack implements msgpack.CustomEncoder with AppendMsgpack, so that
// msgpack.Marshal of a Record, or of a value holding Records, writes the same
// bytes as before without reflection. Encoder options (compact integers,
// array-encoded structs) do not apply: the format is fixed.
func (r Record) EncodeMsgpack(e *msgpack.Encoder) error {
	// Append straight into the writer's spare capacity when it offers it
	// (bytes.Buffer under msgpack.Marshal, bufio.Writer).
	w := e.Writer()
	if buf, ok := w.(*bytes.Buffer); ok {
		buf.Grow(r.MsgpackSize())
	}
	var b []byte
	if ab, ok := w.(interface{ AvailableBuffer() []byte }); ok {
		b = ab.AvailableBuffer()
	}
	_, err := w.Write(r.AppendMsgpack(b))
	return err
}

// DecodeMsgpack implements msgpack.CustomDecoder, so that msgpack.Unmarshal
// into a Record, or into a value holding Records, skips reflection. It reads
// the encodings ParseMsgpack reads, through the Decoder's own methods, except
// that msgpack's Skip does not bound the nesting of unknown values. On a
// byte slice, ParseMsgpack is faster still.
func (r *Record) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := d.DecodeMapLen()
	if err != nil {
		return fmt.Errorf("decode record: %w", err)
	}
	if n < 0 {
		return errors.New("decode record: nil instead of a map")
	}
	*r = Record{}
	var buf [maxKeyLen]byte
	for range n {
		key, err := decodeKey(d, &buf)
		if err != nil {
			return fmt.Errorf("decode record key: %w", err)
		}
		if err := r.decodeField(d, key); err != nil {
			return fmt.Errorf("decode record field %q: %w", key, err)
		}
	}
	return nil
}

func (r *Record) decodeField(d *msgpack.Decoder, key []byte) error {
	var err error
	switch string(key) {
	case "offset":
		var v uint64
		v, err = d.DecodeUint64()
		r.Offset = Offset(v)
	case "epoch":
		var v uint64
		v, err = d.DecodeUint64()
		r.Epoch = Epoch(v)
	case "type":
		r.Type, err = d.DecodeString()
	case "client":
		r.ClientID, err = d.DecodeString()
	case "seq":
		r.Seq, err = d.DecodeUint64()
	case "time":
		r.Time, err = d.DecodeInt64()
	case "data":
		r.Data, err = d.DecodeBytes()
	default:
		err = d.Skip()
	}
	return err
}

// maxKeyLen is the longest field name; a longer key is unknown.
const maxKeyLen = 8

// decodeKey reads a str or bin key (or nil, as "") into buf without allocating. A key
// longer than buf is consumed and returned as a prefix that cannot match a
// field name, since it ends with a 0 byte.
func decodeKey(d *msgpack.Decoder, buf *[maxKeyLen]byte) ([]byte, error) {
	n, err := d.DecodeBytesLen()
	if err != nil {
		return nil, err
	}
	if n <= 0 { // nil reads as "", as reflection read it
		return buf[:0], nil
	}
	if n <= len(buf) {
		return buf[:n], d.ReadFull(buf[:n])
	}
	for left := n; left > 0; left -= len(buf) {
		if err := d.ReadFull(buf[:min(left, len(buf))]); err != nil {
			return nil, err
		}
	}
	buf[len(buf)-1] = 0
	return buf[:], nil
}

// Interface checks: msgpack finds the methods by these interfaces.
var (
	_ msgpack.CustomEncoder = Record{}
	_ msgpack.CustomDecoder = (*Record)(nil)
)

func appendUint64(dst []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, mpUint64), v)
}

// strSize is the encoded length of a string of n bytes.
func strSize(n int) int {
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

func appendStr(dst []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, mpStr8, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, mpStr16), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, mpStr32), uint32(n))
	}
	return append(dst, s...)
}

// binSize is the encoded length of a non-nil []byte of n bytes.
func binSize(n int) int {
	switch {
	case n <= math.MaxUint8:
		return 2 + n
	case n <= math.MaxUint16:
		return 3 + n
	}
	return 5 + n
}

func appendBinHeader(dst []byte, n int) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(dst, mpBin8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, mpBin16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, mpBin32), uint32(n))
}

// maxSkipDepth bounds the nesting of an unknown field's value, so that
// hostile input cannot exhaust the stack.
const maxSkipDepth = 32

// mpReader reads msgpack values from b. Every read checks the declared
// lengths against the bytes left, so no input makes it panic or allocate.
// Invariant: 0 <= off <= len(b).
type mpReader struct {
	b   []byte
	off int
}

func (d *mpReader) errorf(format string, args ...any) error {
	return fmt.Errorf("byte %d: %s", d.off, fmt.Sprintf(format, args...))
}

// next returns the next n bytes.
func (d *mpReader) next(n uint64) ([]byte, error) {
	if n > uint64(len(d.b)-d.off) {
		return nil, d.short(n)
	}
	p := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return p, nil
}

// short reports that n bytes were wanted and fewer are left; out of line
// so that next inlines.
func (d *mpReader) short(n uint64) error {
	return fmt.Errorf("byte %d: truncated: %d bytes wanted, %d left", d.off, n, len(d.b)-d.off)
}

func (d *mpReader) code() (byte, error) {
	if d.off >= len(d.b) {
		return 0, d.short(1)
	}
	d.off++
	return d.b[d.off-1], nil
}

// be reads a big-endian unsigned integer of size 1, 2, 4 or 8 bytes.
func (d *mpReader) be(size uint64) (uint64, error) {
	p, err := d.next(size)
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

// mapLen reads a map header (not nil: a record is never nil).
func (d *mpReader) mapLen() (int, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == 0x80:
		return int(c & 0x0f), nil
	case c == mpMap16:
		n, err = d.be(2)
	case c == mpMap32:
		n, err = d.be(4)
	default:
		d.off--
		return 0, d.errorf("want a map, have type 0x%02x", c)
	}
	return int(n), err
}

// uint reads any msgpack integer, or nil as 0, as msgpack's DecodeUint64
// does: a signed value keeps its two's complement bits, so that int64
// fields can use it too.
func (d *mpReader) uint() (uint64, error) {
	if p := d.b[d.off:]; len(p) >= 9 && (p[0] == mpUint64 || p[0] == mpInt64) { // what we write
		d.off += 9
		return binary.BigEndian.Uint64(p[1:]), nil
	}
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f || c >= 0xe0: // positive and negative fixint
		return uint64(int64(int8(c))), nil
	case c == mpNil:
		return 0, nil
	case c >= mpUint8 && c <= mpUint64:
		return d.be(1 << (c - mpUint8))
	case c >= mpInt8 && c <= mpInt64:
		v, err := d.be(1 << (c - mpInt8))
		switch c {
		case mpInt8:
			v = uint64(int64(int8(v)))
		case mpInt16:
			v = uint64(int64(int16(v)))
		case mpInt32:
			v = uint64(int64(int32(v)))
		}
		return v, err
	}
	d.off--
	return 0, d.errorf("want an integer, have type 0x%02x", c)
}

// str reads a str or bin value as a slice of b, nil for msgpack nil (an
// empty value is empty but not nil).
func (d *mpReader) str() ([]byte, error) {
	if p := d.b[d.off:]; len(p) > 0 && p[0]&0xe0 == 0xa0 && int(p[0]&0x1f) < len(p) { // fixstr: keys
		n := int(p[0] & 0x1f)
		d.off += 1 + n
		return p[1 : 1+n], nil
	}
	c, err := d.code()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch c {
	case mpNil:
		return nil, nil
	case mpStr8, mpBin8:
		n, err = d.be(1)
	case mpStr16, mpBin16:
		n, err = d.be(2)
	case mpStr32, mpBin32:
		n, err = d.be(4)
	default:
		if c&0xe0 != 0xa0 { // not a fixstr
			d.off--
			return nil, d.errorf("want a string, have type 0x%02x", c)
		}
		n = uint64(c & 0x1f)
	}
	if err != nil {
		return nil, err
	}
	p, err := d.next(n)
	if p == nil && err == nil {
		p = d.b[d.off:d.off] // empty, not nil
	}
	return p, err
}

// skip passes over one value of any type, depth levels deep.
func (d *mpReader) skip(depth int) error {
	if depth > maxSkipDepth {
		return d.errorf("nested deeper than %d", maxSkipDepth)
	}
	c, err := d.code()
	if err != nil {
		return err
	}
	var n uint64 // bytes to pass (scalars) or elements to skip (collections)
	switch {
	case c <= 0x7f || c >= 0xe0 || c == mpNil || c == 0xc2 || c == 0xc3: // fixint, nil, bool
		return nil
	case c <= 0x8f: // fixmap
		return d.skipN(2*uint64(c&0x0f), depth)
	case c <= 0x9f: // fixarray
		return d.skipN(uint64(c&0x0f), depth)
	case c <= 0xbf: // fixstr
		n = uint64(c & 0x1f)
	case c == mpBin8 || c == mpStr8:
		n, err = d.be(1)
	case c == mpBin16 || c == mpStr16:
		n, err = d.be(2)
	case c == mpBin32 || c == mpStr32:
		n, err = d.be(4)
	case c >= 0xc7 && c <= 0xc9: // ext 8, 16, 32: a length, then a type byte
		n, err = d.be(1 << (c - 0xc7))
		n++
	case c == 0xca: // float 32
		n = 4
	case c == 0xcb: // float 64
		n = 8
	case c >= mpUint8 && c <= mpUint64:
		n = 1 << (c - mpUint8)
	case c >= mpInt8 && c <= mpInt64:
		n = 1 << (c - mpInt8)
	case c >= 0xd4 && c <= 0xd8: // fixext 1..16, plus the type byte
		n = 1 + 1<<(c-0xd4)
	case c == 0xdc || c == 0xdd: // array 16, 32
		if n, err = d.be(2 << (c - 0xdc)); err == nil {
			return d.skipN(n, depth)
		}
	case c == mpMap16 || c == mpMap32:
		if n, err = d.be(2 << (c - mpMap16)); err == nil {
			return d.skipN(2*n, depth)
		}
	default: // 0xc1, never used
		d.off--
		return d.errorf("invalid type 0x%02x", c)
	}
	if err != nil {
		return err
	}
	_, err = d.next(n)
	return err
}

// skipN skips n values nested one level deeper. Each takes at least a byte,
// so a count beyond the bytes left fails at once.
func (d *mpReader) skipN(n uint64, depth int) error {
	if n > uint64(len(d.b)-d.off) {
		return fmt.Errorf("byte %d: truncated: %d values declared, %d bytes left", d.off, n, len(d.b)-d.off)
	}
	for range n {
		if err := d.skip(depth + 1); err != nil {
			return err
		}
	}
	return nil
}
