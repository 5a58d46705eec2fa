package chat

// Goal: the hand-written codecs are invisible. Each encoder writes exactly
// msgpack.Marshal's bytes (stored states, digests and snapshots do not
// change), each decoder reads back what the encoders write, and on any input
// at all a decoder that accepts it agrees with msgpack.Unmarshal, while
// decodeValue falls back to Unmarshal for every form the decoder leaves.

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// codecKinds returns a new zero value of every type with a fast codec.
func codecKinds() []fastCodec {
	return []fastCodec{new(userRec), new(msgRec), new(clientRec), new(Result), new(SendEvent), new(DeliverEvent)}
}

// newLike returns a new zero value of v's type.
func newLike(v fastCodec) fastCodec {
	return reflect.New(reflect.TypeOf(v).Elem()).Interface().(fastCodec)
}

// randomValues returns values of every fast-codec type, with strings and
// lists around every msgpack length boundary and integers at the extremes.
func randomValues(rng *rand.Rand) []fastCodec {
	strLens := []int{0, 1, 31, 32, 255, 256, math.MaxUint16, math.MaxUint16 + 1}
	str := func() string {
		n := strLens[rng.IntN(len(strLens))]
		if rng.IntN(4) > 0 {
			n = rng.IntN(40)
		}
		return strings.Repeat(string(rune('a'+rng.IntN(26))), n)
	}
	u64 := func() uint64 {
		switch rng.IntN(4) {
		case 0:
			return 0
		case 1:
			return math.MaxUint64 - uint64(rng.IntN(2))
		default:
			return rng.Uint64() >> rng.IntN(64)
		}
	}
	i64 := func() int64 { return int64(u64()) }
	ids := func() []uint64 {
		switch rng.IntN(4) {
		case 0:
			return nil
		case 1:
			return []uint64{}
		}
		n := rng.IntN(20)
		if rng.IntN(8) == 0 {
			n = 1 + rng.IntN(MaxIDsPerCommand)
		}
		v := make([]uint64, n)
		for i := range v {
			v[i] = u64()
		}
		return v
	}
	b := func() bool { return rng.IntN(2) == 0 }
	return []fastCodec{
		&userRec{ID: u64(), Name: str(), Hash: str(), Created: i64(), Unread: u64(), History: u64(), Origin: u64()},
		&msgRec{ID: u64(), From: u64(), FromName: str(), To: u64(), ToName: str(), Body: str(), Time: i64(),
			Offset: u64(), SenderView: b(), RecipientView: b(), Delivered: b()},
		&clientRec{Last: i64(), Floor: u64(), Count: u64(), Holes: u64(), HoleFloor: u64()},
		&Result{Code: str(), Message: str(), UserID: u64(), MessageID: u64(), Time: i64(), IDs: ids()},
		&SendEvent{MessageID: u64(), FromUID: u64(), ToUID: u64(), Body: str(), FromOrigin: u64(), ToOrigin: u64()},
		&DeliverEvent{UID: u64(), MessageIDs: ids(), Origin: u64()},
	}
}

func TestFastCodec_SameBytesAsMsgpack(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		for _, v := range randomValues(rng) {
			want, err := msgpack.Marshal(v)
			require.NoError(t, err)
			got := v.appendMsgpack(nil)
			require.Equal(t, want, got, "%T %+v", v, v)

			back := newLike(v)
			require.True(t, back.decodeMsgpack(got), "%T: the decoder reads what the encoder writes", v)
			ref := newLike(v)
			require.NoError(t, msgpack.Unmarshal(got, ref))
			require.Equal(t, ref, back, "%T", v)
			if r, ok := v.(*Result); !ok || len(r.IDs) > 0 || r.IDs == nil {
				// (An empty IDs is omitted, so it reads back nil.)
				require.Equal(t, v, back, "%T round trip", v)
			}
		}
	}
}

func TestEncodeValue_AsMarshal(t *testing.T) {
	for _, v := range []any{&userRec{ID: 1, Name: "ann"}, []uint64{1, 2}, &RegisterEvent{Name: "x"}} {
		want, err := msgpack.Marshal(v)
		require.NoError(t, err)
		got, err := encodeValue(v)
		require.NoError(t, err)
		assert.Equal(t, want, got, "%T", v)
	}
	_, err := encodeValue(make(chan int))
	assert.Error(t, err, "an unencodable value is an error")
}

// marshalWith encodes v by msgpack reflection on an encoder set up by opt.
func marshalWith(t testing.TB, v any, opt func(*msgpack.Encoder)) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	opt(enc)
	require.NoError(t, enc.Encode(v))
	return buf.Bytes()
}

// mapOf encodes a map with the given keys and values, in order.
func mapOf(t testing.TB, kvs ...any) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	require.NoError(t, enc.EncodeMapLen(len(kvs)/2))
	for _, x := range kvs {
		require.NoError(t, enc.Encode(x))
	}
	return buf.Bytes()
}

func TestFastCodec_OtherForms(t *testing.T) {
	u := &userRec{ID: 3, Name: "ann", Hash: "h", Created: -7, Unread: 1, History: 2}
	tests := []struct {
		name string
		data []byte
		into fastCodec
		fast bool // whether the fast decoder takes it
	}{
		{"compact integers", marshalWith(t, u, func(e *msgpack.Encoder) { e.UseCompactInts(true) }), new(userRec), true},
		{"keys in another order", mapOf(t, "name", "ann", "id", uint64(3)), new(userRec), true},
		{"a key twice: the last wins", mapOf(t, "id", uint64(3), "id", uint64(4)), new(userRec), true},
		{"trailing bytes are ignored", append(u.appendMsgpack(nil), 0xc1), new(userRec), true},
		{"empty id list", mapOf(t, "uid", uint64(1), "ids", []uint64{}), new(DeliverEvent), true},
		{"array-encoded struct", marshalWith(t, u, func(e *msgpack.Encoder) { e.UseArrayEncodedStructs(true) }), new(userRec), false},
		{"unknown key", mapOf(t, "id", uint64(3), "nick", "a"), new(userRec), false},
		{"nil value", mapOf(t, "id", nil), new(userRec), false},
		{"nil record", []byte{0xc0}, new(clientRec), false}, // msgpack nil
		{"binary string", mapOf(t, "body", []byte("hi")), new(SendEvent), false},
		{"string for a number", mapOf(t, "count", "1"), new(clientRec), false},
		{"number for a bool", mapOf(t, "sv", 1), new(msgRec), false},
		{"truncated", u.appendMsgpack(nil)[:20], new(userRec), false},
		{"too many ids", mapOf(t, "ids", make([]uint64, MaxIDsPerCommand+1)), new(DeliverEvent), false},
		{"empty input", nil, new(Result), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fast := newLike(tt.into)
			assert.Equal(t, tt.fast, fast.decodeMsgpack(tt.data))
			if !tt.fast {
				assert.Equal(t, newLike(tt.into), fast, "a refused input leaves the value unchanged")
			}
			want := newLike(tt.into)
			wantErr := msgpack.Unmarshal(tt.data, want)
			got := newLike(tt.into)
			gotErr := decodeValue(tt.data, got)
			assert.Equal(t, wantErr == nil, gotErr == nil, "decodeValue fails as Unmarshal does: %v / %v", gotErr, wantErr)
			if wantErr == nil {
				assert.Equal(t, want, got)
			}
		})
	}
}

// FuzzFastCodec_MatchesMsgpack checks that whatever a fast decoder accepts,
// msgpack.Unmarshal accepts too and decodes to the same value, and that
// the value re-encodes to Marshal's bytes.
func FuzzFastCodec_MatchesMsgpack(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 4 {
		for i, v := range randomValues(rng) {
			f.Add(uint8(i), v.appendMsgpack(nil))
		}
	}
	f.Add(uint8(0), mapOf(f, "id", -1, "id", uint64(9), "created", uint64(math.MaxUint64)))
	f.Add(uint8(3), mapOf(f, "ids", nil, "ids", []uint64{1}, "time", int8(-3)))
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		kinds := codecKinds()
		fast := kinds[int(kind)%len(kinds)]
		if !fast.decodeMsgpack(data) {
			return
		}
		want := newLike(fast)
		require.NoError(t, msgpack.Unmarshal(data, want))
		require.Equal(t, want, fast)
		enc, err := msgpack.Marshal(fast)
		require.NoError(t, err)
		require.Equal(t, enc, fast.appendMsgpack(nil))
	})
}
