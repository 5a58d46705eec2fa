package chat

import (
	"encoding/binary"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// Hand-written msgpack for the values Apply reads and writes on every
// request: userRec, msgRec, clientRec, Result and the send and deliver
// events. msgpack's reflection costs several allocations and a few hundred
// nanoseconds per value, and a send encodes five values and decodes four.
//
// The encoders write exactly the bytes msgpack.Marshal writes for the same
// value (a map keyed by the msgpack tags in field order, omitempty fields
// left out, every integer in 9 bytes), so stored states, digests and
// snapshots are unchanged; a test compares them with Marshal on random
// values. The decoders read that form only: a value in any other form that
// msgpack accepts (compact integers, nil, binary strings, an array, unknown
// keys) makes them report false, and the caller falls back to
// msgpack.Unmarshal, so both read every input alike.

// fastCodec is a value with a hand-written codec.
type fastCodec interface {
	// appendMsgpack appends the value's msgpack.Marshal encoding to b.
	appendMsgpack(b []byte) []byte
	// decodeMsgpack sets the value from b and reports true if b is in the
	// form appendMsgpack writes; otherwise it leaves the value unchanged.
	decodeMsgpack(b []byte) bool
}

var (
	_ fastCodec = (*userRec)(nil)
	_ fastCodec = (*msgRec)(nil)
	_ fastCodec = (*clientRec)(nil)
	_ fastCodec = (*Result)(nil)
	_ fastCodec = (*SendEvent)(nil)
	_ fastCodec = (*DeliverEvent)(nil)
)

// msgpack codes written or read here.
const (
	mpFixMap   = 0x80 // | n, n < 16
	mpFixArray = 0x90 // | n, n < 16
	mpFixStr   = 0xa0 // | n, n < 32
	mpNil      = 0xc0
	mpFalse    = 0xc2
	mpTrue     = 0xc3
	mpUint8    = 0xcc
	mpUint16   = 0xcd
	mpUint32   = 0xce
	mpUint64   = 0xcf
	mpInt8     = 0xd0
	mpInt16    = 0xd1
	mpInt32    = 0xd2
	mpInt64    = 0xd3
	mpStr8     = 0xd9
	mpStr16    = 0xda
	mpStr32    = 0xdb
	mpArray16  = 0xdc
	mpArray32  = 0xdd
	mpMap16    = 0xde
	mpMap32    = 0xdf
)

func appendMapLen(b []byte, n int) []byte { return appendLen(b, n, mpFixMap, 16, mpMap16) }

func appendArrayLen(b []byte, n int) []byte { return appendLen(b, n, mpFixArray, 16, mpArray16) }

// appendLen writes a map or array header: fix|n below fixMax, else the
// 16-bit form, else the 32-bit one (whose code follows the 16-bit one).
func appendLen(b []byte, n int, fix byte, fixMax int, code16 byte) []byte {
	switch {
	case n < fixMax:
		return append(b, fix|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, code16), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, code16+1), uint32(n))
	}
}

func appendStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, mpFixStr|byte(n))
	case n <= math.MaxUint8:
		b = append(b, mpStr8, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, mpStr16), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, mpStr32), uint32(n))
	}
	return append(b, s...)
}

// appendKeyU64 writes a map entry with a uint64 value, as Marshal does: 9
// bytes whatever the value.
func appendKeyU64(b []byte, key string, v uint64) []byte {
	return binary.BigEndian.AppendUint64(append(appendStr(b, key), mpUint64), v)
}

func appendKeyI64(b []byte, key string, v int64) []byte {
	return binary.BigEndian.AppendUint64(append(appendStr(b, key), mpInt64), uint64(v))
}

func appendKeyStr(b []byte, key, v string) []byte { return appendStr(appendStr(b, key), v) }

func appendKeyBool(b []byte, key string, v bool) []byte {
	b = appendStr(b, key)
	if v {
		return append(b, mpTrue)
	}
	return append(b, mpFalse)
}

// appendKeyU64s writes a []uint64 entry: nil as nil, as Marshal does.
func appendKeyU64s(b []byte, key string, v []uint64) []byte {
	b = appendStr(b, key)
	if v == nil {
		return append(b, mpNil)
	}
	b = appendArrayLen(b, len(v))
	for _, x := range v {
		b = binary.BigEndian.AppendUint64(append(b, mpUint64), x)
	}
	return b
}

// mpReader reads the msgpack forms the encoders above write. The first
// input it does not expect clears ok, after which every read returns a
// zero value: callers check ok once, at the end.
type mpReader struct {
	b  []byte
	ok bool
}

func newMPReader(b []byte) mpReader { return mpReader{b: b, ok: true} }

// take returns the next n bytes, or nil (clearing ok) if there are fewer.
func (r *mpReader) take(n int) []byte {
	if !r.ok || n < 0 || len(r.b) < n {
		r.ok = false
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *mpReader) code() byte {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

// length reads a map or array header of the kind whose fix form is fix
// (with fixMax entries at most) and 16-bit code is code16.
func (r *mpReader) length(fix byte, fixMax int, code16 byte) int {
	c := r.code()
	switch {
	case !r.ok:
		return 0
	case c >= fix && int(c-fix) < fixMax:
		return int(c - fix)
	case c == code16:
		if p := r.take(2); p != nil {
			return int(binary.BigEndian.Uint16(p))
		}
	case c == code16+1:
		if p := r.take(4); p != nil && uint64(binary.BigEndian.Uint32(p)) <= math.MaxInt32 {
			return int(binary.BigEndian.Uint32(p))
		}
	}
	r.ok = false
	return 0
}

func (r *mpReader) mapLen() int { return r.length(mpFixMap, 16, mpMap16) }

func (r *mpReader) arrayLen() int { return r.length(mpFixArray, 16, mpArray16) }

// strBytes reads a string, returning its bytes (not copied).
func (r *mpReader) strBytes() []byte {
	c := r.code()
	n := -1
	switch {
	case !r.ok:
	case c >= mpFixStr && c < mpFixStr+32:
		n = int(c - mpFixStr)
	case c == mpStr8:
		if p := r.take(1); p != nil {
			n = int(p[0])
		}
	case c == mpStr16:
		if p := r.take(2); p != nil {
			n = int(binary.BigEndian.Uint16(p))
		}
	case c == mpStr32:
		if p := r.take(4); p != nil && uint64(binary.BigEndian.Uint32(p)) <= math.MaxInt32 {
			n = int(binary.BigEndian.Uint32(p))
		}
	}
	return r.take(n)
}

func (r *mpReader) str() string { return string(r.strBytes()) }

// u64 reads an integer as msgpack's DecodeUint64 does (any integer code, a
// negative one converted), but not nil.
func (r *mpReader) u64() uint64 {
	c := r.code()
	switch {
	case !r.ok:
		return 0
	case c <= 0x7f || c >= 0xe0: // positive and negative fixnum
		return uint64(int8(c))
	}
	var n uint64
	switch c {
	case mpUint8:
		n = r.fixed(1)
	case mpInt8:
		n = uint64(int8(r.fixed(1)))
	case mpUint16:
		n = r.fixed(2)
	case mpInt16:
		n = uint64(int16(r.fixed(2)))
	case mpUint32:
		n = r.fixed(4)
	case mpInt32:
		n = uint64(int32(r.fixed(4)))
	case mpUint64, mpInt64:
		n = r.fixed(8)
	default:
		r.ok = false
	}
	return n
}

// i64 reads an integer as msgpack's DecodeInt64 does, which for every code
// is the same two's-complement value as DecodeUint64's.
func (r *mpReader) i64() int64 { return int64(r.u64()) }

// fixed reads an n-byte big-endian unsigned integer.
func (r *mpReader) fixed(n int) uint64 {
	var v uint64
	for _, c := range r.take(n) {
		v = v<<8 | uint64(c)
	}
	return v
}

func (r *mpReader) bool() bool {
	switch r.code() {
	case mpTrue:
		return true
	case mpFalse:
	default:
		r.ok = false
	}
	return false
}

// u64s reads a []uint64 of at most limit entries (nil for msgpack nil).
func (r *mpReader) u64s(limit int) []uint64 {
	if r.ok && len(r.b) > 0 && r.b[0] == mpNil {
		r.b = r.b[1:]
		return nil
	}
	n := r.arrayLen()
	if n > limit || n > len(r.b) { // every entry takes a byte at least
		r.ok = false
	}
	if !r.ok {
		return nil
	}
	v := make([]uint64, n)
	for i := range v {
		v[i] = r.u64()
	}
	return v
}

// decodeValue decodes b into v, by its fast codec when it has one and b is
// in its form, else by msgpack's reflection.
func decodeValue(b []byte, v any) error {
	if c, ok := v.(fastCodec); ok && c.decodeMsgpack(b) {
		return nil
	}
	return msgpack.Unmarshal(b, v)
}

// encodeValue is msgpack.Marshal(v) (the same bytes), by v's fast codec
// when it has one.
func encodeValue(v any) ([]byte, error) {
	if c, ok := v.(fastCodec); ok {
		return c.appendMsgpack(make([]byte, 0, marshalSizeHint)), nil
	}
	return marshal(v)
}

func (u *userRec) appendMsgpack(b []byte) []byte {
	b = appendMapLen(b, 6)
	b = appendKeyU64(b, "id", u.ID)
	b = appendKeyStr(b, "name", u.Name)
	b = appendKeyStr(b, "hash", u.Hash)
	b = appendKeyI64(b, "created", u.Created)
	b = appendKeyU64(b, "unread", u.Unread)
	return appendKeyU64(b, "history", u.History)
}

func (u *userRec) decodeMsgpack(b []byte) bool {
	r := newMPReader(b)
	var v userRec
	for n := r.mapLen(); n > 0 && r.ok; n-- {
		switch string(r.strBytes()) {
		case "id":
			v.ID = r.u64()
		case "name":
			v.Name = r.str()
		case "hash":
			v.Hash = r.str()
		case "created":
			v.Created = r.i64()
		case "unread":
			v.Unread = r.u64()
		case "history":
			v.History = r.u64()
		default:
			r.ok = false
		}
	}
	if r.ok {
		*u = v
	}
	return r.ok
}

func (m *msgRec) appendMsgpack(b []byte) []byte {
	b = appendMapLen(b, 11)
	b = appendKeyU64(b, "id", m.ID)
	b = appendKeyU64(b, "from", m.From)
	b = appendKeyStr(b, "from_name", m.FromName)
	b = appendKeyU64(b, "to", m.To)
	b = appendKeyStr(b, "to_name", m.ToName)
	b = appendKeyStr(b, "body", m.Body)
	b = appendKeyI64(b, "time", m.Time)
	b = appendKeyU64(b, "offset", m.Offset)
	b = appendKeyBool(b, "sv", m.SenderView)
	b = appendKeyBool(b, "rv", m.RecipientView)
	return appendKeyBool(b, "delivered", m.Delivered)
}

func (m *msgRec) decodeMsgpack(b []byte) bool {
	r := newMPReader(b)
	var v msgRec
	for n := r.mapLen(); n > 0 && r.ok; n-- {
		switch string(r.strBytes()) {
		case "id":
			v.ID = r.u64()
		case "from":
			v.From = r.u64()
		case "from_name":
			v.FromName = r.str()
		case "to":
			v.To = r.u64()
		case "to_name":
			v.ToName = r.str()
		case "body":
			v.Body = r.str()
		case "time":
			v.Time = r.i64()
		case "offset":
			v.Offset = r.u64()
		case "sv":
			v.SenderView = r.bool()
		case "rv":
			v.RecipientView = r.bool()
		case "delivered":
			v.Delivered = r.bool()
		default:
			r.ok = false
		}
	}
	if r.ok {
		*m = v
	}
	return r.ok
}

func (c *clientRec) appendMsgpack(b []byte) []byte {
	b = appendMapLen(b, 3)
	b = appendKeyI64(b, "last", c.Last)
	b = appendKeyU64(b, "floor", c.Floor)
	return appendKeyU64(b, "count", c.Count)
}

func (c *clientRec) decodeMsgpack(b []byte) bool {
	r := newMPReader(b)
	var v clientRec
	for n := r.mapLen(); n > 0 && r.ok; n-- {
		switch string(r.strBytes()) {
		case "last":
			v.Last = r.i64()
		case "floor":
			v.Floor = r.u64()
		case "count":
			v.Count = r.u64()
		default:
			r.ok = false
		}
	}
	if r.ok {
		*c = v
	}
	return r.ok
}

func (res *Result) appendMsgpack(b []byte) []byte {
	n := 0
	for _, set := range [...]bool{res.Code != "", res.Message != "", res.UserID != 0, res.MessageID != 0,
		res.Time != 0, len(res.IDs) != 0} {
		if set {
			n++
		}
	}
	b = appendMapLen(b, n)
	if res.Code != "" {
		b = appendKeyStr(b, "code", res.Code)
	}
	if res.Message != "" {
		b = appendKeyStr(b, "msg", res.Message)
	}
	if res.UserID != 0 {
		b = appendKeyU64(b, "uid", res.UserID)
	}
	if res.MessageID != 0 {
		b = appendKeyU64(b, "mid", res.MessageID)
	}
	if res.Time != 0 {
		b = appendKeyI64(b, "time", res.Time)
	}
	if len(res.IDs) != 0 {
		b = appendKeyU64s(b, "ids", res.IDs)
	}
	return b
}

func (res *Result) decodeMsgpack(b []byte) bool {
	r := newMPReader(b)
	var v Result
	for n := r.mapLen(); n > 0 && r.ok; n-- {
		switch string(r.strBytes()) {
		case "code":
			v.Code = r.str()
		case "msg":
			v.Message = r.str()
		case "uid":
			v.UserID = r.u64()
		case "mid":
			v.MessageID = r.u64()
		case "time":
			v.Time = r.i64()
		case "ids":
			// Unbounded, like msgpack's decoding of []uint64; only
			// Apply writes results.
			v.IDs = r.u64s(math.MaxInt)
		default:
			r.ok = false
		}
	}
	if r.ok {
		*res = v
	}
	return r.ok
}

func (ev *SendEvent) appendMsgpack(b []byte) []byte {
	b = appendMapLen(b, 4)
	b = appendKeyU64(b, "id", ev.MessageID)
	b = appendKeyU64(b, "from", ev.FromUID)
	b = appendKeyU64(b, "to", ev.ToUID)
	return appendKeyStr(b, "body", ev.Body)
}

func (ev *SendEvent) decodeMsgpack(b []byte) bool {
	r := newMPReader(b)
	var v SendEvent
	for n := r.mapLen(); n > 0 && r.ok; n-- {
		switch string(r.strBytes()) {
		case "id":
			v.MessageID = r.u64()
		case "from":
			v.FromUID = r.u64()
		case "to":
			v.ToUID = r.u64()
		case "body":
			v.Body = r.str()
		default:
			r.ok = false
		}
	}
	if r.ok {
		*ev = v
	}
	return r.ok
}

func (ev *DeliverEvent) appendMsgpack(b []byte) []byte {
	b = appendMapLen(b, 2)
	b = appendKeyU64(b, "uid", ev.UID)
	return appendKeyU64s(b, "ids", ev.MessageIDs)
}

func (ev *DeliverEvent) decodeMsgpack(b []byte) bool {
	r := newMPReader(b)
	var v DeliverEvent
	for n := r.mapLen(); n > 0 && r.ok; n-- {
		switch string(r.strBytes()) {
		case "uid":
			v.UID = r.u64()
		case "ids":
			// Bounded as IDList.DecodeMsgpack bounds it: a longer list is
			// left to it, to refuse.
			v.MessageIDs = r.u64s(MaxIDsPerCommand)
		default:
			r.ok = false
		}
	}
	if r.ok {
		*ev = v
	}
	return r.ok
}
