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
// slice. The Reader refuses any declared length or count that does not fit
// in the bytes left, and unknown values nest at most maxMsgpackDepth deep,
// so a hostile frame makes decoding allocate in proportion to its size and
// no more.

import (
	"fmt"

	"github.com/replichat/replichat/eventlog"
	"github.com/replichat/replichat/eventlog/mpack"
)

// messageFixedMax bounds the encoded size of a Message without its Records
// and ISR: 24 fields of at most a 3-byte key and a 9-byte value, plus the
// map and array headers.
const messageFixedMax = 3 + 28*(3+9) + 2*5

// isrMemberSize bounds the encoded size of one ISRMember: a fixmap of 2 or
// 3, "id" and a uint32, "inc" and a uint64, "disk" and a uint64.
const isrMemberSize = 1 + 3 + 5 + 4 + 9 + 5 + 9

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
		m.ISRAt != 0, m.Recovering, m.Eligible, m.SeenIncarnation != 0, m.At != 0, m.Count != 0,
		m.Disk != 0, m.Stamp != 0, m.Echo != 0, m.Stable != 0, m.DiskFull} {
		if present {
			n++
		}
	}
	return n
}

func (m *Message) appendMsgpack(b []byte) []byte {
	b = mpack.AppendMapHeader(b, m.fieldCount())
	b = mpack.AppendUint8(append(b, "\xa1t"...), uint8(m.Type))
	b = mpack.AppendUint32(append(b, "\xa1f"...), uint32(m.From))
	b = mpack.AppendUint32(append(b, "\xa2to"...), uint32(m.To))
	b = mpack.AppendUint64(append(b, "\xa1e"...), uint64(m.Epoch))
	b = mpack.AppendUint8(append(b, "\xa1r"...), uint8(m.Role))
	b = mpack.AppendUint32(append(b, "\xa1p"...), uint32(m.Primary))
	b = mpack.AppendUint64(append(b, "\xa2lo"...), uint64(m.LastOffset))
	b = mpack.AppendUint64(append(b, "\xa2le"...), uint64(m.LastEpoch))
	b = appendUint64Omit(b, "\xa1c", uint64(m.Commit))
	b = appendUint64Omit(b, "\xa2pv", uint64(m.Prev))
	b = appendUint64Omit(b, "\xa2pe", uint64(m.PrevEpoch))
	if len(m.Records) > 0 {
		b = mpack.AppendArrayHeader(append(b, "\xa2rs"...), len(m.Records))
		for i := range m.Records {
			b = m.Records[i].AppendMsgpack(b)
		}
	}
	b = appendTrueOmit(b, "\xa1x", m.Reject)
	b = appendTrueOmit(b, "\xa2pr", m.Probe)
	b = appendTrueOmit(b, "\xa2fr", m.Fresher)
	if len(m.ISR) > 0 {
		b = mpack.AppendArrayHeader(append(b, "\xa1i"...), len(m.ISR))
		for _, mb := range m.ISR {
			header := byte(0x82)
			if mb.Disk != 0 {
				header = 0x83
			}
			b = mpack.AppendUint32(append(b, header, 0xa2, 'i', 'd'), uint32(mb.ID))
			b = mpack.AppendUint64(append(b, "\xa3inc"...), mb.Incarnation)
			b = appendUint64Omit(b, "\xa4disk", mb.Disk)
		}
	}
	b = appendUint64Omit(b, "\xa2ie", uint64(m.ISREpoch))
	b = appendUint64Omit(b, "\xa2ia", uint64(m.ISRAt))
	b = appendTrueOmit(b, "\xa2rc", m.Recovering)
	b = appendTrueOmit(b, "\xa2el", m.Eligible)
	b = mpack.AppendUint64(append(b, "\xa2in"...), m.Incarnation)
	b = appendUint64Omit(b, "\xa2si", m.SeenIncarnation)
	b = appendUint64Omit(b, "\xa2at", uint64(m.At))
	if m.Count != 0 {
		b = mpack.AppendInt(append(b, "\xa1n"...), int64(m.Count))
	}
	b = appendUint64Omit(b, "\xa2dk", m.Disk)
	b = appendUint64Omit(b, "\xa2sp", m.Stamp)
	b = appendUint64Omit(b, "\xa2ec", m.Echo)
	b = appendUint64Omit(b, "\xa2st", uint64(m.Stable))
	b = appendTrueOmit(b, "\xa2df", m.DiskFull)
	return b
}

// appendUint64Omit appends key and v unless v is 0 (omitempty).
func appendUint64Omit(b []byte, key string, v uint64) []byte {
	if v == 0 {
		return b
	}
	return mpack.AppendUint64(append(b, key...), v)
}

// appendTrueOmit appends key and true if v (omitempty).
func appendTrueOmit(b []byte, key string, v bool) []byte {
	if !v {
		return b
	}
	return mpack.AppendBool(append(b, key...), true)
}

// DecodeMessage parses a message encoded by EncodeMessage. Its Records do
// not alias b. Their payloads share one array (at most len(b) bytes), so a
// record kept after the others are dropped keeps that array alive.
func DecodeMessage(b []byte) (Message, error) {
	var m Message
	d := msgReader{mpack.NewReader(b)}
	n, err := d.MapLen()
	if err != nil {
		return Message{}, fmt.Errorf("decode message: %w", err)
	}
	for range n {
		key, err := d.Bytes()
		if err != nil {
			return Message{}, fmt.Errorf("decode message key: %w", err)
		}
		if err := d.field(&m, key); err != nil {
			return Message{}, fmt.Errorf("decode message field %q: %w", key, err)
		}
	}
	if n := d.Len(); n > 0 {
		return Message{}, fmt.Errorf("decode message: %d trailing bytes after the message", n)
	}
	return m, nil
}

// maxMsgpackDepth bounds the nesting of unknown values a message may carry
// (a Message itself nests 4 deep: message, records, record, fields).
const maxMsgpackDepth = 16

// msgReader reads the values of a message. The Reader checks every length
// against the bytes left, so bad input is an error, never a panic or an
// allocation larger than the frame warrants.
type msgReader struct {
	*mpack.Reader
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
	case "dk":
		m.Disk, err = readUint[uint64](d)
	case "sp":
		m.Stamp, err = readUint[uint64](d)
	case "ec":
		m.Echo, err = readUint[uint64](d)
	case "st":
		m.Stable, err = readUint[eventlog.Offset](d)
	case "df":
		m.DiskFull, err = d.bool()
	default:
		err = d.Skip(maxMsgpackDepth)
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
	slab := make([]byte, d.Len())
	used := 0
	for i := range recs {
		r := &recs[i]
		if i > 0 {
			r.Type, r.ClientID = recs[i-1].Type, recs[i-1].ClientID
		}
		r.Data = slab[used:used]
		in := d.Rest()
		rest, err := r.ParseMsgpack(in)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if _, err := d.Next(len(in) - len(rest)); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
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
		fields, err := d.MapLen()
		if err != nil {
			return nil, fmt.Errorf("member %d: %w", i, err)
		}
		for range fields {
			key, err := d.Bytes()
			if err == nil {
				switch string(key) {
				case "id":
					isr[i].ID, err = readUint[NodeID](d)
				case "inc":
					isr[i].Incarnation, err = readUint[uint64](d)
				case "disk":
					isr[i].Disk, err = readUint[uint64](d)
				default:
					err = d.Skip(maxMsgpackDepth)
				}
			}
			if err != nil {
				return nil, fmt.Errorf("member %d: %w", i, err)
			}
		}
	}
	return isr, nil
}

// arrayLen reads an array header, or nil as -1.
func (d *msgReader) arrayLen() (int, error) {
	if d.Nil() {
		return -1, nil
	}
	return d.ArrayLen()
}

// bool reads a bool, or nil as false.
func (d *msgReader) bool() (bool, error) {
	if d.Nil() {
		return false, nil
	}
	return d.Bool()
}

// integer reads any msgpack integer, or nil as 0, as msgpack's DecodeUint64
// does: a signed value keeps its two's complement bits.
func (d *msgReader) integer() (uint64, error) { return d.Uint64OrNil() }

// readUint reads an integer into an unsigned field type, rejecting values
// that do not fit (reflection silently truncated them).
func readUint[T ~uint8 | ~uint32 | ~uint64](d *msgReader) (T, error) {
	start := d.Offset()
	v, err := d.integer()
	if err != nil {
		return 0, err
	}
	if uint64(T(v)) != v {
		return 0, fmt.Errorf("byte %d: %d out of range", start, v)
	}
	return T(v), nil
}
