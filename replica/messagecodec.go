package replica

// A hand-written msgpack codec for Message. A catch-up moves every missed
// record through EncodeMessage on the primary and DecodeMessage on the
// backup; msgpack's reflection spent a quarter of the backup's CPU there.
//
// The bytes are exactly those msgpack/v5 (v5.4.1, default options) writes by
// reflection for the tagged struct, because replicas of different builds
// must understand each other:
//   - a map of the fields in declaration order, omitempty fields left out
//     when zero (a slice when empty), so the header is a fixmap, or a map16
//     from 16 fields on;
//   - keys as fixstr;
//   - sized integer kinds at full width whatever their value: Type and Role
//     (uint8) as 0xcc + 1 byte, NodeIDs (uint32) as 0xce + 4 bytes, offsets,
//     epochs and incarnations (uint64) as 0xcf + 8 bytes; Count (int) in the
//     shortest form;
//   - Records as an array of eventlog.Record.AppendMsgpack; ISR as an array
//     of {"id", "inc"} maps.
//
// Decoding accepts what reflection accepted, except values that do not fit
// their field (reflection truncated them): keys in any order, unknown keys
// (skipped), any integer form or nil for an integer, nil for a bool or a
// slice. checkMsgpack runs first, so the declared lengths are known to fit.

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/replichat/replichat/eventlog"
)

// msgpack type bytes used by the codec.
const (
	mpNil    = 0xc0
	mpFalse  = 0xc2
	mpTrue   = 0xc3
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
	mpBin8   = 0xc4
	mpBin16  = 0xc5
	mpBin32  = 0xc6
	mpArr16  = 0xdc
	mpArr32  = 0xdd
	mpMap16  = 0xde
	mpMap32  = 0xdf
)

// messageFixedMax bounds the encoded size of a Message without its Records
// and ISR: 24 fields of at most a 3-byte key and a 9-byte value, plus the
// map and array headers.
const messageFixedMax = 3 + 24*(3+9) + 2*5

// isrMemberSize is the encoded size of one ISRMember: a fixmap of 2, "id"
// and a uint32, "inc" and a uint64.
const isrMemberSize = 1 + 3 + 5 + 4 + 9

// EncodeMessage returns the wire form of m (msgpack), for the transport.
// The error is always nil: every Message has a wire form. It stays in the
// signature so that callers need not change if that ever stops being true.
func EncodeMessage(m Message) ([]byte, error) {
	size := messageFixedMax + len(m.ISR)*isrMemberSize
	for i := range m.Records {
		size += m.Records[i].MsgpackSize()
	}
	return m.appendMsgpack(make([]byte, 0, size)), nil
}

// fieldCount is the number of map entries m encodes to.
func (m *Message) fieldCount() int {
	n := 9 // t f to e r p lo le in: never omitted
	for _, present := range [...]bool{m.Commit != 0, m.Prev != 0, m.PrevEpoch != 0,
		len(m.Records) > 0, m.Reject, m.Probe, m.Fresher, len(m.ISR) > 0, m.ISREpoch != 0,
		m.ISRAt != 0, m.Recovering, m.Eligible, m.SeenIncarnation != 0, m.At != 0, m.Count != 0} {
		if present {
			n++
		}
	}
	return n
}

func (m *Message) appendMsgpack(b []byte) []byte {
	if n := m.fieldCount(); n < 16 {
		b = append(b, 0x80|byte(n))
	} else {
		b = binary.BigEndian.AppendUint16(append(b, mpMap16), uint16(n))
	}
	b = append(b, "\xa1t"...)
	b = append(b, mpUint8, byte(m.Type))
	b = appendUint32(append(b, "\xa1f"...), uint32(m.From))
	b = appendUint32(append(b, "\xa2to"...), uint32(m.To))
	b = appendUint64(append(b, "\xa1e"...), uint64(m.Epoch))
	b = append(b, "\xa1r"...)
	b = append(b, mpUint8, byte(m.Role))
	b = appendUint32(append(b, "\xa1p"...), uint32(m.Primary))
	b = appendUint64(append(b, "\xa2lo"...), uint64(m.LastOffset))
	b = appendUint64(append(b, "\xa2le"...), uint64(m.LastEpoch))
	b = appendUint64Omit(b, "\xa1c", uint64(m.Commit))
	b = appendUint64Omit(b, "\xa2pv", uint64(m.Prev))
	b = appendUint64Omit(b, "\xa2pe", uint64(m.PrevEpoch))
	if len(m.Records) > 0 {
		b = appendArrayHeader(append(b, "\xa2rs"...), len(m.Records))
		for i := range m.Records {
			b = m.Records[i].AppendMsgpack(b)
		}
	}
	b = appendTrueOmit(b, "\xa1x", m.Reject)
	b = appendTrueOmit(b, "\xa2pr", m.Probe)
	b = appendTrueOmit(b, "\xa2fr", m.Fresher)
	if len(m.ISR) > 0 {
		b = appendArrayHeader(append(b, "\xa1i"...), len(m.ISR))
		for _, mb := range m.ISR {
			b = appendUint32(append(b, 0x82, 0xa2, 'i', 'd'), uint32(mb.ID))
			b = appendUint64(append(b, "\xa3inc"...), mb.Incarnation)
		}
	}
	b = appendUint64Omit(b, "\xa2ie", uint64(m.ISREpoch))
	b = appendUint64Omit(b, "\xa2ia", uint64(m.ISRAt))
	b = appendTrueOmit(b, "\xa2rc", m.Recovering)
	b = appendTrueOmit(b, "\xa2el", m.Eligible)
	b = appendUint64(append(b, "\xa2in"...), m.Incarnation)
	b = appendUint64Omit(b, "\xa2si", m.SeenIncarnation)
	b = appendUint64Omit(b, "\xa2at", uint64(m.At))
	if m.Count != 0 {
		b = appendInt(append(b, "\xa1n"...), int64(m.Count))
	}
	return b
}

func appendUint32(b []byte, v uint32) []byte {
	return binary.BigEndian.AppendUint32(append(b, mpUint32), v)
}

func appendUint64(b []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(append(b, mpUint64), v)
}

// appendUint64Omit appends key and v unless v is 0 (omitempty).
func appendUint64Omit(b []byte, key string, v uint64) []byte {
	if v == 0 {
		return b
	}
	return appendUint64(append(b, key...), v)
}

// appendTrueOmit appends key and true if v (omitempty).
func appendTrueOmit(b []byte, key string, v bool) []byte {
	if !v {
		return b
	}
	return append(append(b, key...), mpTrue)
}

func appendArrayHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mpArr16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, mpArr32), uint32(n))
}

// appendInt appends v in its shortest form, as msgpack's EncodeInt does for
// an int field.
func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0 && v <= math.MaxInt8, v < 0 && v >= -32:
		return append(b, byte(v))
	case v > 0 && v <= math.MaxUint8:
		return append(b, mpUint8, byte(v))
	case v > 0 && v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mpUint16), uint16(v))
	case v > 0 && v <= math.MaxUint32:
		return appendUint32(b, uint32(v))
	case v > 0:
		return appendUint64(b, uint64(v))
	case v >= math.MinInt8:
		return append(b, mpInt8, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, mpInt16), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, mpInt32), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, mpInt64), uint64(v))
}

// DecodeMessage parses a message encoded by EncodeMessage. Its Records do
// not alias b. Their payloads share one array (at most len(b) bytes), so a
// record kept after the others are dropped keeps that array alive.
func DecodeMessage(b []byte) (Message, error) {
	// The bounds check comes first: the decoder below sizes slices from
	// declared lengths, which it may then trust to fit in b.
	if err := checkMsgpack(b); err != nil {
		return Message{}, fmt.Errorf("decode message: %w", err)
	}
	var m Message
	d := msgReader{msgpackChecker{b: b}}
	n, err := d.mapLen()
	if err != nil {
		return Message{}, fmt.Errorf("decode message: %w", err)
	}
	for range n {
		key, err := d.str()
		if err != nil {
			return Message{}, fmt.Errorf("decode message key: %w", err)
		}
		if err := d.field(&m, key); err != nil {
			return Message{}, fmt.Errorf("decode message field %q: %w", key, err)
		}
	}
	return m, nil
}

// msgReader reads the values of a message that checkMsgpack accepted.
type msgReader struct {
	msgpackChecker
}

func (d *msgReader) field(m *Message, key []byte) error {
	var err error
	switch string(key) {
	case "t":
		m.Type, err = readUint[MsgType](d)
	case "f":
		m.From, err = readUint[NodeID](d)
	case "to":
		m.To, err = readUint[NodeID](d)
	case "e":
		m.Epoch, err = readUint[eventlog.Epoch](d)
	case "r":
		m.Role, err = readUint[Role](d)
	case "p":
		m.Primary, err = readUint[NodeID](d)
	case "lo":
		m.LastOffset, err = readUint[eventlog.Offset](d)
	case "le":
		m.LastEpoch, err = readUint[eventlog.Epoch](d)
	case "c":
		m.Commit, err = readUint[eventlog.Offset](d)
	case "pv":
		m.Prev, err = readUint[eventlog.Offset](d)
	case "pe":
		m.PrevEpoch, err = readUint[eventlog.Epoch](d)
	case "rs":
		m.Records, err = d.records()
	case "x":
		m.Reject, err = d.bool()
	case "pr":
		m.Probe, err = d.bool()
	case "fr":
		m.Fresher, err = d.bool()
	case "i":
		m.ISR, err = d.isr()
	case "ie":
		m.ISREpoch, err = readUint[eventlog.Epoch](d)
	case "ia":
		m.ISRAt, err = readUint[eventlog.Offset](d)
	case "rc":
		m.Recovering, err = d.bool()
	case "el":
		m.Eligible, err = d.bool()
	case "in":
		m.Incarnation, err = readUint[uint64](d)
	case "si":
		m.SeenIncarnation, err = readUint[uint64](d)
	case "at":
		m.At, err = readUint[eventlog.Offset](d)
	case "n":
		var v uint64
		v, err = d.integer()
		m.Count = int(int64(v))
	default:
		err = d.value(0)
	}
	return err
}

// records decodes an array of records. Their payloads share one array
// (sized by the bytes left in the frame, which bound them), and a record's
// Type and ClientID the previous record's strings when equal: a catch-up
// batch then costs a few allocations instead of three per record.
func (d *msgReader) records() ([]eventlog.Record, error) {
	n, err := d.arrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	recs := make([]eventlog.Record, n)
	if n == 0 {
		return recs, nil
	}
	slab := make([]byte, len(d.b)-d.off)
	used := 0
	for i := range recs {
		r := &recs[i]
		if i > 0 {
			r.Type, r.ClientID = recs[i-1].Type, recs[i-1].ClientID
		}
		r.Data = slab[used:used]
		rest, err := r.ParseMsgpack(d.b[d.off:])
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		d.off = len(d.b) - len(rest)
		if r.Data != nil {
			// Capped, so that appending to one payload cannot overwrite
			// the next.
			r.Data = r.Data[:len(r.Data):len(r.Data)]
			used += len(r.Data)
		}
	}
	return recs, nil
}

func (d *msgReader) isr() ([]ISRMember, error) {
	n, err := d.arrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	isr := make([]ISRMember, n)
	for i := range isr {
		fields, err := d.mapLen()
		if err != nil {
			return nil, fmt.Errorf("member %d: %w", i, err)
		}
		for range fields {
			key, err := d.str()
			if err == nil {
				switch string(key) {
				case "id":
					isr[i].ID, err = readUint[NodeID](d)
				case "inc":
					isr[i].Incarnation, err = readUint[uint64](d)
				default:
					err = d.value(0)
				}
			}
			if err != nil {
				return nil, fmt.Errorf("member %d: %w", i, err)
			}
		}
	}
	return isr, nil
}

func (d *msgReader) errorf(format string, args ...any) error {
	return fmt.Errorf("byte %d: %s", d.off, fmt.Sprintf(format, args...))
}

// code returns the next type byte. checkMsgpack has bounded every length
// already; the reader checks again so that a disagreement between the two is
// an error, not a panic.
func (d *msgReader) code() (byte, error) {
	if d.off >= len(d.b) {
		return 0, d.errorf("%v", errTruncated)
	}
	d.off++
	return d.b[d.off-1], nil
}

// be reads a big-endian unsigned integer of size 1, 2, 4 or 8 bytes.
func (d *msgReader) be(size int) (uint64, error) {
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

// next returns the next n bytes.
func (d *msgReader) next(n int) ([]byte, error) {
	if n < 0 || n > len(d.b)-d.off {
		return nil, d.errorf("%v: %d bytes wanted", errTruncated, n)
	}
	d.off += n
	return d.b[d.off-n : d.off], nil
}

// mapLen reads a map header (not nil).
func (d *msgReader) mapLen() (int, error) {
	c, err := d.code()
	switch {
	case err != nil:
		return 0, err
	case c&0xf0 == 0x80:
		return int(c & 0x0f), nil
	case c == mpMap16 || c == mpMap32:
		n, err := d.be(2 << (c - mpMap16))
		return int(n), err
	}
	d.off--
	return 0, d.errorf("want a map, have type 0x%02x", c)
}

// arrayLen reads an array header, or nil as -1.
func (d *msgReader) arrayLen() (int, error) {
	c, err := d.code()
	switch {
	case err != nil:
		return 0, err
	case c == mpNil:
		return -1, nil
	case c&0xf0 == 0x90:
		return int(c & 0x0f), nil
	case c == mpArr16 || c == mpArr32:
		n, err := d.be(2 << (c - mpArr16))
		return int(n), err
	}
	d.off--
	return 0, d.errorf("want an array, have type 0x%02x", c)
}

// bool reads a bool, or nil as false.
func (d *msgReader) bool() (bool, error) {
	c, err := d.code()
	switch {
	case err != nil:
		return false, err
	case c == mpNil || c == mpFalse:
		return false, nil
	case c == mpTrue:
		return true, nil
	}
	d.off--
	return false, d.errorf("want a bool, have type 0x%02x", c)
}

// integer reads any msgpack integer, or nil as 0, as msgpack's DecodeUint64
// does: a signed value keeps its two's complement bits.
func (d *msgReader) integer() (uint64, error) {
	c, err := d.code()
	switch {
	case err != nil:
		return 0, err
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

// readUint reads an integer into an unsigned field type, rejecting values
// that do not fit (reflection silently truncated them).
func readUint[T ~uint8 | ~uint32 | ~uint64](d *msgReader) (T, error) {
	start := d.off
	v, err := d.integer()
	if err != nil {
		return 0, err
	}
	if uint64(T(v)) != v {
		d.off = start
		return 0, d.errorf("%d out of range", v)
	}
	return T(v), nil
}

// str reads a str or bin value (a key) as a slice of b.
func (d *msgReader) str() ([]byte, error) {
	c, err := d.code()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == mpStr8 || c == mpBin8:
		n, err = d.be(1)
	case c == mpStr16 || c == mpBin16:
		n, err = d.be(2)
	case c == mpStr32 || c == mpBin32:
		n, err = d.be(4)
	default:
		d.off--
		return nil, d.errorf("want a string, have type 0x%02x", c)
	}
	if err != nil {
		return nil, err
	}
	return d.next(int(n))
}
