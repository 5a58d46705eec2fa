package chat

import (
	"math"

	"github.com/replichat/replichat/eventlog/mpack"
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

// appendKeyU64 writes a map entry with a uint64 value, as Marshal does: 9
// bytes whatever the value.
func appendKeyU64(b []byte, key string, v uint64) []byte {
	return mpack.AppendUint64(mpack.AppendStr(b, key), v)
}

func appendKeyI64(b []byte, key string, v int64) []byte {
	return mpack.AppendInt64(mpack.AppendStr(b, key), v)
}

func appendKeyStr(b []byte, key, v string) []byte { return mpack.AppendStr(mpack.AppendStr(b, key), v) }

func appendKeyBool(b []byte, key string, v bool) []byte {
	return mpack.AppendBool(mpack.AppendStr(b, key), v)
}

// appendKeyU64s writes a []uint64 entry: nil as nil, as Marshal does.
func appendKeyU64s(b []byte, key string, v []uint64) []byte {
	b = mpack.AppendStr(b, key)
	if v == nil {
		return mpack.AppendNil(b)
	}
	b = mpack.AppendArrayHeader(b, len(v))
	for _, x := range v {
		b = mpack.AppendUint64(b, x)
	}
	return b
}

// mpReader reads the msgpack forms the encoders above write, through an
// mpack.Reader that has none of the leniencies reflection has (nil for a
// value, bin for a string). The first input it does not expect clears ok,
// after which its results are meaningless: callers check ok once, at the
// end, and stop reading when it is clear.
type mpReader struct {
	r  *mpack.Reader
	ok bool
}

func newMPReader(b []byte) mpReader { return mpReader{r: mpack.NewReader(b), ok: true} }

// check clears ok if err is not nil.
func (r *mpReader) check(err error) {
	if err != nil {
		r.ok = false
	}
}

func (r *mpReader) mapLen() int {
	n, err := r.r.MapLen()
	r.check(err)
	return n
}

// strBytes reads a string, returning its bytes (not copied).
func (r *mpReader) strBytes() []byte {
	s, err := r.r.Str()
	r.check(err)
	return s
}

func (r *mpReader) str() string { return string(r.strBytes()) }

// u64 reads an integer as msgpack's DecodeUint64 does (any integer code, a
// negative one converted), but not nil.
func (r *mpReader) u64() uint64 {
	v, err := r.r.Uint64()
	r.check(err)
	return v
}

// i64 reads an integer as msgpack's DecodeInt64 does, which for every code
// is the same two's-complement value as DecodeUint64's.
func (r *mpReader) i64() int64 { return int64(r.u64()) }

func (r *mpReader) bool() bool {
	v, err := r.r.Bool()
	r.check(err)
	return v
}

// u64s reads a []uint64 of at most limit entries (nil for msgpack nil).
func (r *mpReader) u64s(limit int) []uint64 {
	if r.ok && r.r.Nil() {
		return nil
	}
	n, err := r.r.ArrayLen()
	r.check(err)
	if n > limit {
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
	n := 6
	if u.Origin != 0 {
		n++
	}
	b = mpack.AppendMapHeader(b, n)
	b = appendKeyU64(b, "id", u.ID)
	b = appendKeyStr(b, "name", u.Name)
	b = appendKeyStr(b, "hash", u.Hash)
	b = appendKeyI64(b, "created", u.Created)
	b = appendKeyU64(b, "unread", u.Unread)
	b = appendKeyU64(b, "history", u.History)
	if u.Origin != 0 {
		b = appendKeyU64(b, "origin", u.Origin)
	}
	return b
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
		case "origin":
			v.Origin = r.u64()
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
	b = mpack.AppendMapHeader(b, 11)
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
	n := 3
	if c.Holes != 0 {
		n++
	}
	if c.HoleFloor != 0 {
		n++
	}
	b = mpack.AppendMapHeader(b, n)
	b = appendKeyI64(b, "last", c.Last)
	b = appendKeyU64(b, "floor", c.Floor)
	b = appendKeyU64(b, "count", c.Count)
	if c.Holes != 0 {
		b = appendKeyU64(b, "holes", c.Holes)
	}
	if c.HoleFloor != 0 {
		b = appendKeyU64(b, "hole_floor", c.HoleFloor)
	}
	return b
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
		case "holes":
			v.Holes = r.u64()
		case "hole_floor":
			v.HoleFloor = r.u64()
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
	b = mpack.AppendMapHeader(b, n)
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
	n := 4
	if ev.FromOrigin != 0 {
		n++
	}
	if ev.ToOrigin != 0 {
		n++
	}
	b = mpack.AppendMapHeader(b, n)
	b = appendKeyU64(b, "id", ev.MessageID)
	b = appendKeyU64(b, "from", ev.FromUID)
	b = appendKeyU64(b, "to", ev.ToUID)
	b = appendKeyStr(b, "body", ev.Body)
	if ev.FromOrigin != 0 {
		b = appendKeyU64(b, "from_o", ev.FromOrigin)
	}
	if ev.ToOrigin != 0 {
		b = appendKeyU64(b, "to_o", ev.ToOrigin)
	}
	return b
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
		case "from_o":
			v.FromOrigin = r.u64()
		case "to_o":
			v.ToOrigin = r.u64()
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
	n := 2
	if ev.Origin != 0 {
		n++
	}
	b = mpack.AppendMapHeader(b, n)
	b = appendKeyU64(b, "uid", ev.UID)
	b = appendKeyU64s(b, "ids", ev.MessageIDs)
	if ev.Origin != 0 {
		b = appendKeyU64(b, "o", ev.Origin)
	}
	return b
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
		case "o":
			v.Origin = r.u64()
		default:
			r.ok = false
		}
	}
	if r.ok {
		*ev = v
	}
	return r.ok
}
